//! The partner network: CMO profiles, qualification, inspections, quality agreements, scorecards and selection.

pub mod cmos;
pub mod evaluations;

//! Contract manufacturers: profiles and qualification, scorecards, selection evaluations.

pub mod cmo;
pub mod scorecard;
pub mod selection;

//! Contract manufacturers: their shared profiles, each sponsor's relationship with them
//! (connection, qualification), scorecards, selection evaluations.

pub mod cmo;
pub mod cmo_merge;
pub mod merge_choice;
pub mod relationship;
pub mod scorecard;
pub mod selection;

//! The project plan: programs, team, milestones, gates, action items, plan templates and the weekly digest preview.

pub mod actions;
pub mod digest;
pub mod gates;
pub mod milestones;
pub mod programs;
pub mod team;
pub mod templates;

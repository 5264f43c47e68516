//! The project plan: programs, milestones, gates, action items, the team, plan templates, the overview and the weekly digest.

pub mod action_item;
pub mod digest;
pub mod gate;
pub mod milestone;
pub mod milestone_dependency;
pub mod milestone_rules;
pub mod overview;
pub mod plan_template;
pub mod program;
pub mod team_member;

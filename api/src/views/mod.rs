//! How records read on the wire: every response view, grouped by area as the routes
//! are, kept apart from the handlers (which keep their request bodies), so that no route
//! module imports another and a view is written once.

pub mod escalation;
pub mod identity;
pub mod integrations;
pub mod partners;
pub mod plan;
pub mod quality;

use serde::Serialize;

/// Serializes a view for the audit trail and for what a signature binds: the record's
/// facts, without the hints about what can be done with it next (`allowed_events`,
/// `blocked_events`), which depend on who asks and when.
pub fn snapshot<T: Serialize>(view: &T) -> serde_json::Value {
    entity::audit::record_snapshot(view).unwrap_or(serde_json::Value::Null)
}

pub use entity::workflow::BlockedEvent;

/// What this caller can do with a record now, and for the rest why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOptions<E> {
    pub allowed: Vec<E>,
    pub blocked: Vec<BlockedEvent>,
}

/// A view that carries `allowed_events` and `blocked_events`.
pub trait Offers<E> {
    fn offer(&mut self, options: EventOptions<E>);
}

/// Implements [`Offers`] for views with `allowed_events: Vec<E>` and
/// `blocked_events: Option<Vec<BlockedEvent>>`.
macro_rules! offers {
    ($($view:ty => $event:ty),* $(,)?) => {
        $(impl $crate::views::Offers<$event> for $view {
            fn offer(&mut self, options: $crate::views::EventOptions<$event>) {
                self.allowed_events = options.allowed;
                self.blocked_events = Some(options.blocked);
            }
        })*
    };
}

offers!(
    quality::CapaView => entity::capa::CapaEvent,
    plan::MilestoneView => entity::milestone_rules::MilestoneEvent,
    plan::ActionItemView => entity::action_item::ActionEvent,
    partners::CmoView => entity::cmo::QualificationEvent,
    partners::EvaluationView => entity::selection::EvaluationEvent,
    quality::DeviationView => entity::deviation::DeviationEvent,
    quality::ChangeView => entity::change_request::ChangeEvent,
    entity::escalation::EscalationView => entity::workflow::escalation::EscalationEvent,
);

//! HTTP routes, grouped by area, and the route table. Handlers stay thin: parse,
//! authorize, call the rule, write in one transaction with its audit event, render. The
//! helpers every handler uses are named here once (`ApiJson`, `Page`, `snapshot`, …).

pub mod escalation;
pub mod health;
pub mod identity;
pub mod integrations;
pub mod links;
pub mod partners;
pub mod plan;
pub mod quality;
pub mod record_pages;

use self::escalation::{escalations, policy};
use self::identity::{
    audit, checkpoints, invitations, me, organizations, service_accounts, sign_in, signatures,
    tokens, users,
};
use self::integrations::{calendar, events, webhooks};
use self::links::{ack, unsubscribe};
use self::partners::{
    agreements, cmos, connections, evaluations, inspections, merges, qualification, scorecards,
};
use self::plan::{
    actions, digest, gate_decisions, gates, milestone_steps, milestones, programs, team, templates,
};
use self::quality::{capas, changes, deviations, extension_requests, production};

/// Registers every `/api/v1` handler (and so its OpenAPI operation).
/// A file to take away (an export, a record's copy): `Content-Disposition: attachment`
/// with its name, never cached.
pub fn attachment(
    content_type: &str,
    file_name: &str,
    body: impl actix_web::body::MessageBody + 'static,
) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type(content_type.to_string())
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{file_name}\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

pub fn configure_api(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(me::get_me)
        .service(organizations::create_organization)
        .service(organizations::list_organizations)
        .service(organizations::get_organization)
        .service(sign_in::sign_in)
        .service(sign_in::request_password_reset)
        .service(sign_in::complete_password_reset)
        // `accept` before `{id}` routes of the same prefix.
        .service(invitations::accept_invitation)
        .service(invitations::create_invitation)
        .service(invitations::list_invitations)
        .service(invitations::resend_invitation)
        .service(invitations::revoke_invitation)
        .service(users::list_users)
        .service(users::get_user)
        .service(users::update_user)
        .service(users::deactivate_user)
        .service(users::set_password)
        .service(users::force_password_reset)
        .service(users::certify_signature)
        .service(service_accounts::create_service_account)
        .service(tokens::issue_token)
        .service(tokens::list_tokens)
        .service(tokens::revoke_token)
        // `verify` before `{id}`, or "verify" would be taken for an id.
        .service(audit::verify_audit_chain)
        .service(checkpoints::list_checkpoints)
        .service(checkpoints::verify_checkpoint)
        .service(checkpoints::checkpoint_keys)
        .service(audit::list_audit_events)
        .service(audit::get_audit_event)
        .service(programs::create_program)
        .service(programs::list_programs)
        .service(programs::get_program)
        .service(programs::update_program)
        .service(templates::list_plan_templates)
        .service(templates::instantiate_plan)
        .service(templates::program_overview)
        .service(team::add_team_member)
        .service(team::list_team)
        .service(team::update_team_member)
        .service(team::remove_team_member)
        .service(milestones::create_milestone)
        .service(milestones::list_milestones)
        .service(milestones::get_milestone)
        .service(milestones::update_milestone)
        .service(milestone_steps::rebaseline_milestone)
        .service(milestone_steps::correct_actual_dates)
        .service(milestone_steps::transition_milestone)
        .service(gates::get_gate)
        .service(gates::create_gate_item)
        .service(gates::update_gate_item)
        .service(gate_decisions::decide_gate)
        .service(deviations::report_deviation)
        .service(deviations::list_deviations)
        .service(deviations::get_deviation)
        .service(crate::copies::deviation_copy)
        .service(crate::copies::capa_copy)
        .service(crate::copies::change_copy)
        .service(deviations::update_deviation)
        .service(deviations::transition_deviation)
        .service(production::release_production)
        .service(production::quality_summary)
        .service(policy::get_policy)
        .service(policy::update_policy)
        .service(policy::check_policy)
        .service(policy::dry_run)
        // The link routes before `/escalations/{id}`: "ack" is not an id.
        .service(ack::ack_link_page)
        .service(ack::ack_link)
        .service(escalations::open_escalation)
        .service(escalations::list_escalations)
        .service(escalations::get_escalation)
        .service(escalations::ack_escalation)
        .service(escalations::resolve_escalation)
        .service(cmos::list_cmos)
        .service(cmos::get_cmo)
        .service(cmos::update_cmo)
        .service(cmos::create_site)
        .service(cmos::put_sponsor_notes)
        .service(partners::directory::cmo_directory)
        .service(connections::list_connections)
        .service(connections::get_connection)
        .service(connections::invite_cmo)
        .service(connections::transition_connection)
        .service(merges::propose_merge)
        .service(merges::list_merges)
        .service(merges::get_merge)
        .service(merges::transition_merge)
        .service(partners::merge_choices::get_sponsor_choice)
        .service(partners::merge_choices::put_sponsor_choice)
        .service(qualification::transition_qualification)
        .service(inspections::record_inspection)
        .service(inspections::list_inspections)
        .service(scorecards::cmo_scorecard)
        .service(agreements::create_quality_agreement)
        .service(agreements::list_quality_agreements)
        .service(inspections::capa_from_inspection)
        .service(evaluations::create_evaluation)
        .service(evaluations::list_evaluations)
        .service(evaluations::get_evaluation)
        .service(evaluations::give_score)
        .service(evaluations::decide_evaluation)
        .service(evaluations::bid_tab_csv)
        .service(scorecards::program_scorecard)
        .service(events::list_events)
        .service(webhooks::create_webhook)
        .service(webhooks::list_webhooks)
        .service(webhooks::update_webhook)
        .service(webhooks::delete_webhook)
        .service(webhooks::list_deliveries)
        .service(webhooks::redeliver)
        .service(calendar::calendar_link)
        .service(calendar::rotate_calendar_link)
        .service(calendar::calendar_feed)
        .service(digest::preview_digest)
        .service(digest::send_digest)
        .service(crate::routes::plan::audit_trail::program_audit_trail)
        .service(unsubscribe::unsubscribe_page)
        .service(unsubscribe::unsubscribe)
        .service(capas::create_capa)
        .service(capas::list_capas)
        .service(capas::get_capa)
        .service(capas::update_capa)
        .service(capas::add_capa_action)
        .service(capas::transition_capa)
        .service(extension_requests::request_extension)
        .service(extension_requests::list_extension_requests)
        .service(extension_requests::decide_extension)
        .service(changes::create_change)
        .service(changes::list_changes)
        .service(changes::get_change)
        .service(changes::update_change)
        .service(changes::add_change_task)
        .service(changes::transition_change)
        .service(actions::create_action_item)
        .service(actions::list_action_items)
        .service(actions::get_action_item)
        .service(actions::update_action_item)
        .service(actions::transition_action_item)
        .service(actions::snooze_action_item)
        .service(signatures::create_signature)
        .service(signatures::list_signatures)
        .service(signatures::get_signature);
}

/// Pages for people outside `/api/v1`: sign-in, invitation, password reset, account.
pub fn configure_pages(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    use self::identity::account_pages as p;
    record_pages::configure(cfg);
    cfg.service(crate::pages::stylesheet)
        .service(p::sign_in_page)
        .service(p::sign_in_submit)
        .service(p::sign_out)
        .service(p::account)
        .service(p::accept_page)
        .service(p::accept_submit)
        .service(p::request_reset_page)
        .service(p::request_reset_submit)
        .service(p::choose_page)
        .service(p::choose_submit)
        .service(partners::answer_pages::connection_answer_page)
        .service(partners::answer_pages::connection_answer_submit)
        .service(partners::answer_pages::merge_answer_page)
        .service(partners::answer_pages::merge_answer_submit)
        .service(partners::merge_choices::choice_page)
        .service(partners::merge_choices::choice_submit);
}

/// Operational endpoints outside `/api/v1`.
pub fn configure_ops(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics);
}

pub use entity::enums::wire_name;

pub use crate::pagination::{Page, fetch_page};
pub use crate::views::snapshot;
pub use crate::write::{expected_version, optional_version};

pub use crate::extract::{ApiJson, Checks, Validate};

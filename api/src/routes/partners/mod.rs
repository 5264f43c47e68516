//! The partner network: CMO profiles and sites, qualification, inspections, quality
//! agreements, scorecards and selection.

pub mod agreements;
pub mod cmos;
pub mod evaluations;
pub mod inspections;
pub mod qualification;
pub mod scorecards;

use entity::{Role, cmo};

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};

/// The sponsor's admins, program managers and quality manage the registry; a CMO's own
/// admin may keep its capabilities and contacts current.
pub(crate) fn may_edit_profile(ctx: &AuthContext, p: &cmo::Model) -> bool {
    (ctx.org_id() == p.sponsor_org_id && ctx.user.role.handles_quality_records())
        || (ctx.org_id() == p.org_id && ctx.user.role == Role::Admin)
}

/// Registry decisions belong to the CMO's sponsor: its quality, program managers and
/// admins. `what` starts the refusal, e.g. "inspections are recorded".
pub(crate) fn require_sponsor_side(ctx: &AuthContext, p: &cmo::Model, what: &str) -> ApiResult<()> {
    if ctx.org_id() != p.sponsor_org_id || !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(format!(
            "{what} by the sponsor's quality, program managers and admins"
        )));
    }
    Ok(())
}

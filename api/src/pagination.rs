//! Lists: one page of items with the total, the same limits everywhere.

use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QuerySelect, Select};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// One page of a list, with the total number of matching items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Number of items matching the filters, over all pages.
    #[schema(example = 1)]
    pub total: u64,
    #[schema(example = 50)]
    pub limit: u64,
    #[schema(example = 0)]
    pub offset: u64,
}

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 200;
pub const MAX_OFFSET: u64 = 1_000_000;

/// Runs `select` for one page, ordered as the caller ordered it, plus the total count.
pub async fn fetch_page<E, M, C>(
    conn: &C,
    select: Select<E>,
    limit: Option<u64>,
    offset: Option<u64>,
) -> ApiResult<(Vec<M>, u64, u64, u64)>
where
    E: EntityTrait<Model = M>,
    M: FromQueryResult + Sized + Send + Sync,
    C: ConnectionTrait,
{
    let (limit, offset) = bounds(limit, offset)?;
    let items = select.clone().offset(offset).limit(limit).all(conn).await?;
    // A first page that is not full is the whole list: no COUNT round trip.
    let total = if offset == 0 && (items.len() as u64) < limit {
        items.len() as u64
    } else {
        select.count(conn).await?
    };
    Ok((items, total, limit, offset))
}

/// `limit` and `offset` of a list that has no other filter.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200, example = 50)]
    pub limit: Option<u64>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 1000000, example = 0)]
    pub offset: Option<u64>,
}

/// The page size and offset asked for, defaulted and checked against the same bounds as
/// every list.
pub fn bounds(limit: Option<u64>, offset: Option<u64>) -> ApiResult<(u64, u64)> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let offset = offset.unwrap_or(0);
    let mut errors = Vec::new();
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        errors.push(crate::error::FieldError::new(
            "limit",
            "out_of_range",
            format!("must be between 1 and {MAX_PAGE_SIZE}, e.g. limit=50"),
        ));
    }
    if offset > MAX_OFFSET {
        errors.push(crate::error::FieldError::new(
            "offset",
            "out_of_range",
            format!("a whole number from 0 to {MAX_OFFSET}, e.g. offset=100"),
        ));
    }
    if errors.is_empty() {
        Ok((limit, offset))
    } else {
        Err(ApiError::Validation(errors))
    }
}

impl<T> Page<T> {
    /// One page of a list that is already whole in memory (plan templates, signing keys).
    pub fn of_all(all: Vec<T>, paging: &Paging) -> ApiResult<Self> {
        let (limit, offset) = bounds(paging.limit, paging.offset)?;
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect();
        Ok(Page {
            items,
            total,
            limit,
            offset,
        })
    }
}

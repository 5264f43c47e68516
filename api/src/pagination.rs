//! Lists: one page of items, the same limits everywhere, and a cursor to the next page.
//!
//! Every list is ordered by a key that ends with the row's id, so the order is total. The
//! next page is asked for with `cursor` (keyset: the rows after the last one seen, read
//! from the index without skipping anything, as fast at row 100,000 as at row 50) or with
//! `offset` (rows the database skips one by one). The exact `total` costs a COUNT over
//! every matching row, so it is given when asked (`count=true`) or when it is free: the
//! page reached the end of a list read from its start.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{ColumnType, Expr, ExprTrait, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, ModelTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Select, Value,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, FieldError};

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Number of items matching the filters, over all pages. Counting reads every match,
    /// so it is given only with `count=true`, or when this page, read from the start of
    /// the list (no cursor), reaches its end; otherwise null.
    #[schema(example = 1)]
    pub total: Option<u64>,
    #[schema(example = 50)]
    pub limit: u64,
    #[schema(example = 0)]
    pub offset: u64,
    /// The next page: pass it back as `cursor` (with the same filters). Null on the last
    /// page. Opaque; it stays valid while rows are added or changed.
    #[schema(example = "eyJhZnRlciI6W3siaSI6NDJ9XX0")]
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 200;
pub const MAX_OFFSET: u64 = 1_000_000;
/// Longer than any cursor this api gives (a timestamp and an id encode to about 70).
const MAX_CURSOR_LEN: usize = 512;
/// The query parameters every list takes; the rest of a query string is the list's own.
const PAGING_PARAMETERS: [&str; 4] = ["limit", "offset", "cursor", "count"];

/// How to page through a list: where to start, how much, and whether to count.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200, example = 50)]
    pub limit: Option<u64>,
    /// Items to skip (default 0). For deep pages prefer `cursor`, which does not skip.
    #[param(minimum = 0, maximum = 1000000, example = 0)]
    pub offset: Option<u64>,
    /// Start after the last item of a page: that page's `next_cursor` (opaque; only a
    /// value this list gave is accepted). Not with `offset`.
    // No example: a made-up cursor is refused by design, and the conformance run sends
    // every example as valid data.
    #[param(max_length = 512, pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
    /// Also count every matching item into `total` (default false: the count reads the
    /// whole list, so it is given for free only when a page reaches the list's end).
    #[param(example = true)]
    pub count: Option<bool>,
}

/// Where a page starts: after the key of the last item seen, or (for lists kept in
/// memory) after a number of items.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Cursor {
    After(Vec<Key>),
    Skip(u64),
}

/// One value of a list's order key, typed so that it binds as the column's own type.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
enum Key {
    #[serde(rename = "i")]
    Number(i64),
    #[serde(rename = "s")]
    Text(String),
    #[serde(rename = "d")]
    Day(NaiveDate),
    #[serde(rename = "t")]
    Instant(DateTime<Utc>),
}

impl Key {
    fn of(value: Value) -> Option<Key> {
        match value {
            Value::BigInt(Some(v)) => Some(Key::Number(v)),
            Value::Int(Some(v)) => Some(Key::Number(v.into())),
            Value::String(Some(v)) => Some(Key::Text(v)),
            Value::ChronoDate(Some(v)) => Some(Key::Day(v)),
            Value::ChronoDateTimeUtc(Some(v)) => Some(Key::Instant(v)),
            _ => None,
        }
    }

    /// The value to bind against a column of this type, or None when the cursor was made
    /// for another list.
    fn bind_as(self, column_type: &ColumnType) -> Option<Value> {
        match (column_type, self) {
            (ColumnType::BigInteger, Key::Number(v)) => Some(v.into()),
            (ColumnType::Integer, Key::Number(v)) => i32::try_from(v).ok().map(Value::from),
            (ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_), Key::Text(v)) => {
                Some(v.into())
            }
            (ColumnType::Date, Key::Day(v)) => Some(v.into()),
            (ColumnType::TimestampWithTimeZone, Key::Instant(v)) => Some(v.into()),
            _ => None,
        }
    }
}

impl Cursor {
    fn encode(&self) -> String {
        // A list of numbers, strings and dates: serializing cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(raw: &str) -> Option<Cursor> {
        if raw.len() > MAX_CURSOR_LEN {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(raw).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

fn not_this_lists_cursor() -> ApiError {
    ApiError::invalid(
        "cursor",
        "invalid_cursor",
        "not a cursor this list gave: pass back the next_cursor of the page before, \
         e.g. cursor=eyJhZnRlciI6W3siaSI6NDJ9XX0",
    )
}

/// A page asked for, checked.
struct Ask {
    limit: u64,
    offset: u64,
    cursor: Option<Cursor>,
    count: bool,
}

impl Paging {
    fn ask(&self) -> ApiResult<Ask> {
        let (limit, offset) = bounds(self.limit, self.offset)?;
        let cursor = match self.cursor.as_deref() {
            None => None,
            Some(raw) => Some(Cursor::decode(raw).ok_or_else(not_this_lists_cursor)?),
        };
        if cursor.is_some() && offset > 0 {
            return Err(ApiError::invalid(
                "offset",
                "conflict",
                "either a cursor or an offset, not both: drop offset when passing cursor",
            ));
        }
        Ok(Ask {
            limit,
            offset,
            cursor,
            count: self.count.unwrap_or(false),
        })
    }
}

/// The order of a list: columns in one direction, the last one the row's id (unique), so
/// that a cursor names exactly one position.
pub struct Keyset<E: EntityTrait> {
    columns: Vec<E::Column>,
    order: Order,
}

impl<E: EntityTrait> Keyset<E> {
    /// Smallest first, e.g. `Keyset::asc([Column::Position, Column::Id])`.
    pub fn asc(columns: impl IntoIterator<Item = E::Column>) -> Self {
        Keyset {
            columns: columns.into_iter().collect(),
            order: Order::Asc,
        }
    }

    /// Newest or largest first, e.g. `Keyset::desc([Column::DetectedAt, Column::Id])`.
    pub fn desc(columns: impl IntoIterator<Item = E::Column>) -> Self {
        Keyset {
            columns: columns.into_iter().collect(),
            order: Order::Desc,
        }
    }

    fn ordered(&self, mut select: Select<E>) -> Select<E> {
        for c in &self.columns {
            select = select.order_by(*c, self.order.clone());
        }
        select
    }

    /// Rows after `keys` in this order, as one row-value comparison, so that the index
    /// on these columns answers it (PostgreSQL and SQLite both compare row values).
    fn after(&self, keys: Vec<Key>) -> ApiResult<SimpleExpr> {
        if keys.len() != self.columns.len() {
            return Err(not_this_lists_cursor());
        }
        let mut values = Vec::with_capacity(keys.len());
        for (c, k) in self.columns.iter().zip(keys) {
            let v = k
                .bind_as(c.def().get_column_type())
                .ok_or_else(not_this_lists_cursor)?;
            values.push(Expr::val(v));
        }
        let columns = self.columns.iter().map(|c| Expr::col(c.as_column_ref()));
        let (left, right) = (Expr::tuple(columns), Expr::tuple(values));
        Ok(match self.order {
            Order::Desc => left.lt(right),
            _ => left.gt(right),
        })
    }

    fn cursor_of(&self, row: &E::Model) -> ApiResult<String>
    where
        E::Model: ModelTrait<Entity = E>,
    {
        let keys = self
            .columns
            .iter()
            .map(|c| Key::of(row.get(*c)))
            .collect::<Option<Vec<Key>>>()
            .ok_or_else(|| {
                ApiError::Internal("a list is ordered by a column no cursor holds".into())
            })?;
        Ok(Cursor::After(keys).encode())
    }
}

/// Runs `select` for one page in the `keyset` order: after the cursor, or from the
/// offset. One row more than the page tells whether there is a next one; the COUNT runs
/// only when asked for.
pub async fn fetch_page<E, C>(
    conn: &C,
    select: Select<E>,
    keyset: Keyset<E>,
    paging: &Paging,
) -> ApiResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: FromQueryResult + ModelTrait<Entity = E> + Sized + Send + Sync,
    C: ConnectionTrait,
{
    let ask = paging.ask()?;
    let mut page = keyset.ordered(select.clone());
    let from_start = match ask.cursor {
        None => true,
        Some(Cursor::After(keys)) => {
            page = page.filter(keyset.after(keys)?);
            false
        }
        Some(Cursor::Skip(_)) => return Err(not_this_lists_cursor()),
    };
    if ask.offset > 0 {
        page = page.offset(ask.offset);
    }
    let mut items = page.limit(ask.limit + 1).all(conn).await?;
    let more = items.len() as u64 > ask.limit;
    items.truncate(ask.limit as usize);
    let next_cursor = match items.last() {
        Some(last) if more => Some(keyset.cursor_of(last)?),
        _ => None,
    };
    let total = if ask.count {
        Some(select.count(conn).await?)
    } else {
        free_total(from_start, more, ask.offset, items.len())
    };
    Ok(Page {
        items,
        total,
        limit: ask.limit,
        offset: ask.offset,
        next_cursor,
    })
}

/// The total known without counting: a page read from the start of the list that ends
/// it. (An empty page past the end says nothing of how far the end was.)
fn free_total(from_start: bool, more: bool, offset: u64, len: usize) -> Option<u64> {
    (from_start && !more && (offset == 0 || len > 0)).then_some(offset + len as u64)
}

/// The page size and offset asked for, defaulted and checked against the same bounds as
/// every list.
pub fn bounds(limit: Option<u64>, offset: Option<u64>) -> ApiResult<(u64, u64)> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let offset = offset.unwrap_or(0);
    let mut errors = Vec::new();
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            "out_of_range",
            format!("must be between 1 and {MAX_PAGE_SIZE}, e.g. limit=50"),
        ));
    }
    if offset > MAX_OFFSET {
        errors.push(FieldError::new(
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
    /// One page of a list that is already whole in memory (plan templates, signing keys,
    /// the CMO registry after its tag filters): the total is free, the cursor a position.
    pub fn of_all(all: Vec<T>, paging: &Paging) -> ApiResult<Self> {
        let ask = paging.ask()?;
        let start = match ask.cursor {
            None => ask.offset,
            Some(Cursor::Skip(n)) => n,
            Some(Cursor::After(_)) => return Err(not_this_lists_cursor()),
        };
        let total = all.len() as u64;
        let items: Vec<T> = all
            .into_iter()
            .skip(start as usize)
            .take(ask.limit as usize)
            .collect();
        let end = start + items.len() as u64;
        Ok(Page {
            items,
            total: Some(total),
            limit: ask.limit,
            offset: ask.offset,
            next_cursor: (end < total).then(|| Cursor::Skip(end).encode()),
        })
    }

    /// A short list returned whole (a look-up capped at `limit` matches).
    pub fn whole(items: Vec<T>, limit: u64) -> Self {
        Page {
            total: Some(items.len() as u64),
            items,
            limit,
            offset: 0,
            next_cursor: None,
        }
    }

    /// The same page holding `items` instead (each item's view, in the same order).
    pub fn with_items<U>(self, items: Vec<U>) -> Page<U> {
        Page {
            items,
            total: self.total,
            limit: self.limit,
            offset: self.offset,
            next_cursor: self.next_cursor,
        }
    }

    /// The same page with each item turned into its view.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            limit: self.limit,
            offset: self.offset,
            next_cursor: self.next_cursor,
        }
    }
}

/// A list's own filters (`F`, strict about unknown names) and its paging, from one query
/// string. The filter structs do not repeat the paging fields: serde's `flatten` cannot
/// carry numbers and booleans through a query string, so the parameters are split by name.
pub struct ListQuery<F> {
    pub filter: F,
    pub paging: Paging,
}

impl<F: DeserializeOwned> ListQuery<F> {
    fn parse(req: &HttpRequest) -> Result<Self, actix_web::Error> {
        let (paging, own): (Vec<_>, Vec<_>) =
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .partition(|(k, _)| PAGING_PARAMETERS.contains(&k.as_ref()));
        let encode = |pairs: Vec<(std::borrow::Cow<str>, std::borrow::Cow<str>)>| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        };
        let bad = |e| crate::extract::query_error(e, req);
        let filter = web::Query::<F>::from_query(&encode(own)).map_err(bad)?;
        let paging = web::Query::<Paging>::from_query(&encode(paging)).map_err(bad)?;
        Ok(ListQuery {
            filter: filter.into_inner(),
            paging: paging.into_inner(),
        })
    }
}

impl<F: DeserializeOwned> FromRequest for ListQuery<F> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::parse(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_foreign_one_is_refused() {
        let at = "2027-04-02T06:40:00.123456Z"
            .parse::<DateTime<Utc>>()
            .unwrap();
        let c = Cursor::After(vec![Key::Instant(at), Key::Number(42)]);
        let raw = c.encode();
        assert!(
            raw.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        );
        assert!(raw.len() < 100, "{raw}");
        assert_eq!(Cursor::decode(&raw), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(&"A".repeat(MAX_CURSOR_LEN + 1)), None);
        // A timestamp key never binds against an id column, nor text against a date.
        assert_eq!(Key::Instant(at).bind_as(&ColumnType::BigInteger), None);
        assert_eq!(Key::Text("x".into()).bind_as(&ColumnType::Date), None);
        assert_eq!(Key::Number(i64::MAX).bind_as(&ColumnType::Integer), None);
        assert_eq!(
            Key::Number(7).bind_as(&ColumnType::Integer),
            Some(Value::Int(Some(7)))
        );
    }

    #[test]
    fn the_total_is_free_only_from_the_start_to_the_end() {
        assert_eq!(free_total(true, false, 0, 3), Some(3));
        assert_eq!(free_total(true, false, 0, 0), Some(0));
        assert_eq!(free_total(true, false, 100, 7), Some(107));
        // Past the end: how far the end was is unknown.
        assert_eq!(free_total(true, false, 100, 0), None);
        assert_eq!(free_total(true, true, 0, 50), None);
        assert_eq!(free_total(false, false, 0, 7), None);
    }

    #[test]
    fn a_cursor_and_an_offset_together_are_refused() {
        let raw = Cursor::After(vec![Key::Number(1)]).encode();
        let both = Paging {
            cursor: Some(raw),
            offset: Some(10),
            ..Paging::default()
        };
        assert!(both.ask().is_err());
        let skip = Paging {
            cursor: Some(Cursor::Skip(2).encode()),
            ..Paging::default()
        };
        let page = Page::of_all(vec![1, 2, 3], &skip).unwrap();
        assert_eq!(page.items, vec![3]);
        assert_eq!(page.next_cursor, None);
        let first = Page::of_all(
            vec![1, 2, 3],
            &Paging {
                limit: Some(2),
                ..Paging::default()
            },
        )
        .unwrap();
        assert_eq!(first.items, vec![1, 2]);
        assert_eq!(first.total, Some(3));
        let next = Paging {
            cursor: first.next_cursor,
            ..Paging::default()
        };
        assert_eq!(Page::of_all(vec![1, 2, 3], &next).unwrap().items, vec![3]);
    }
}

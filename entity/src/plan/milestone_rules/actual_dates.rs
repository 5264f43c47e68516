//! Actual dates as people record them: work often happens before it is entered, so a
//! start or completion may be recorded for an earlier day and a recorded date corrected,
//! each with a reason (a late or corrected entry says why, as on a GMP record).

use chrono::NaiveDate;

use super::MilestoneEvent;
use crate::milestone::MilestoneStatus;

/// Why an actual date cannot be recorded as given. Work often happens before it is
/// entered: a start or completion may be recorded for an earlier day, and a recorded date
/// corrected, each with a reason (a late or corrected entry says why, as on a GMP record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActualDateError {
    #[error("{field} {day} is after today ({today}) in the program's time zone")]
    InFuture {
        field: &'static str,
        day: NaiveDate,
        today: NaiveDate,
    },
    #[error("actual_end {end} is before actual_start {start}")]
    EndBeforeStart { start: NaiveDate, end: NaiveDate },
    /// Only a date the milestone has can be corrected.
    #[error("the milestone has no {field} yet ({status:?}): record it with its step")]
    NotRecorded {
        field: &'static str,
        status: MilestoneStatus,
    },
    #[error("a date before today, or a correction, needs a reason")]
    ReasonRequired,
    #[error("a day is given only with start and complete")]
    NotApplicable,
}

impl ActualDateError {
    /// The request field the refusal is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::InFuture { field, .. } | Self::NotRecorded { field, .. } => field,
            Self::EndBeforeStart { .. } => "actual_end",
            Self::ReasonRequired => "reason",
            Self::NotApplicable => "on",
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            Self::InFuture { .. } => "in_future",
            Self::EndBeforeStart { .. } => "before_start",
            Self::NotRecorded { .. } => "not_recorded",
            Self::ReasonRequired => "required",
            Self::NotApplicable => "not_applicable",
        }
    }
}

/// Only a start or a completion is recorded for a day (`on`).
pub fn takes_actual_day(event: MilestoneEvent) -> bool {
    matches!(event, MilestoneEvent::Start | MilestoneEvent::Complete)
}

/// The day a `start` or `complete` records: `on` (default `today`, the program's local
/// date). An earlier day needs a reason; a later one is refused; a completion is never
/// before the start.
pub fn actual_day(
    event: MilestoneEvent,
    on: Option<NaiveDate>,
    actual_start: Option<NaiveDate>,
    today: NaiveDate,
    has_reason: bool,
) -> Result<NaiveDate, ActualDateError> {
    let field = "on";
    if !takes_actual_day(event) {
        return match on {
            Some(_) => Err(ActualDateError::NotApplicable),
            None => Ok(today),
        };
    }
    let day = on.unwrap_or(today);
    if day > today {
        return Err(ActualDateError::InFuture { field, day, today });
    }
    if event == MilestoneEvent::Complete
        && let Some(start) = actual_start
        && day < start
    {
        return Err(ActualDateError::EndBeforeStart { start, end: day });
    }
    if day < today && !has_reason {
        return Err(ActualDateError::ReasonRequired);
    }
    Ok(day)
}

/// A correction of a milestone's recorded actual dates (either or both): only dates it
/// has, never after `today`, the end never before the start. Returns the dates it will
/// have.
pub fn corrected_actual_dates(
    status: MilestoneStatus,
    current: (Option<NaiveDate>, Option<NaiveDate>),
    wanted: (Option<NaiveDate>, Option<NaiveDate>),
    today: NaiveDate,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>), ActualDateError> {
    let mut dates = current;
    for (field, now, new, slot) in [
        ("actual_start", current.0, wanted.0, 0),
        ("actual_end", current.1, wanted.1, 1),
    ] {
        let Some(day) = new else { continue };
        if now.is_none() {
            return Err(ActualDateError::NotRecorded { field, status });
        }
        if day > today {
            return Err(ActualDateError::InFuture { field, day, today });
        }
        if slot == 0 {
            dates.0 = Some(day);
        } else {
            dates.1 = Some(day);
        }
    }
    if let (Some(start), Some(end)) = dates
        && end < start
    {
        return Err(ActualDateError::EndBeforeStart { start, end });
    }
    Ok(dates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, m, day).unwrap()
    }

    #[test]
    fn a_start_or_completion_is_recorded_for_today_or_an_earlier_day_with_a_reason() {
        use MilestoneEvent as E;
        let today = d(3, 10);
        assert_eq!(actual_day(E::Start, None, None, today, false), Ok(today));
        assert_eq!(
            actual_day(E::Start, Some(d(3, 2)), None, today, true),
            Ok(d(3, 2))
        );
        assert_eq!(
            actual_day(E::Start, Some(d(3, 2)), None, today, false),
            Err(ActualDateError::ReasonRequired),
            "a late entry says why"
        );
        assert_eq!(
            actual_day(E::Complete, Some(d(3, 11)), Some(d(3, 1)), today, true),
            Err(ActualDateError::InFuture {
                field: "on",
                day: d(3, 11),
                today
            })
        );
        assert_eq!(
            actual_day(E::Complete, Some(d(2, 27)), Some(d(3, 1)), today, true),
            Err(ActualDateError::EndBeforeStart {
                start: d(3, 1),
                end: d(2, 27)
            })
        );
        assert_eq!(
            actual_day(E::Hold, Some(d(3, 2)), None, today, true),
            Err(ActualDateError::NotApplicable)
        );
        assert_eq!(actual_day(E::Hold, None, None, today, true), Ok(today));
    }

    #[test]
    fn only_recorded_dates_are_corrected_and_stay_in_order() {
        use MilestoneStatus as S;
        let today = d(3, 10);
        assert_eq!(
            corrected_actual_dates(
                S::Completed,
                (Some(d(3, 1)), Some(d(3, 5))),
                (Some(d(2, 26)), None),
                today
            ),
            Ok((Some(d(2, 26)), Some(d(3, 5))))
        );
        assert_eq!(
            corrected_actual_dates(
                S::InProgress,
                (Some(d(3, 1)), None),
                (None, Some(d(3, 5))),
                today
            ),
            Err(ActualDateError::NotRecorded {
                field: "actual_end",
                status: S::InProgress
            })
        );
        assert_eq!(
            corrected_actual_dates(
                S::Completed,
                (Some(d(3, 1)), Some(d(3, 5))),
                (Some(d(3, 6)), None),
                today
            ),
            Err(ActualDateError::EndBeforeStart {
                start: d(3, 6),
                end: d(3, 5)
            })
        );
        assert!(matches!(
            corrected_actual_dates(
                S::Completed,
                (Some(d(3, 1)), Some(d(3, 5))),
                (None, Some(d(3, 12))),
                today
            ),
            Err(ActualDateError::InFuture {
                field: "actual_end",
                ..
            })
        ));
    }
}

//! Rules the request validation enforces, stated in the OpenAPI document as well, so
//! generated clients and forms check a value before sending it, and a fuzzer's
//! schema-valid requests are ones the api accepts:
//! - text fields: the characters [`Checks::text`](crate::extract::Checks::text) allows
//!   (one line up to [`ONE_LINE_MAX`] characters, else line breaks and tabs too) and
//!   something besides white space;
//! - time zones: the IANA names the api knows (chrono-tz's database);
//! - transition bodies: which fields an event takes and which it requires, as one
//!   `oneOf` variant per group of events, taken from the state machines' own rules.

use std::collections::BTreeSet;

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};

use crate::extract::ONE_LINE_MAX;

/// A one-line text: no control characters, not only white space.
pub const ONE_LINE_PATTERN: &str = r"^(?!\s*$)[^\u0000-\u001F\u007F-\u009F]*$";
/// A multi-line text: line breaks (`\n`) and tabs, no other control characters, not
/// only white space.
pub const MULTI_LINE_PATTERN: &str = r"^(?!\s*$)[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$";

/// Text-like request fields that are not texts people write: passwords take any
/// character (a password manager's output is the user's business).
const NOT_TEXT: [&str; 3] = ["password", "new_password", "current_password"];

const TIME_ZONE_SCHEMA: &str = "TimeZoneName";
const EVENT_TYPE_SCHEMA: &str = "EventTypeName";

/// Dates and times a request carries lie in 1900–2199 (`crate::extract`'s
/// `EARLIEST_YEAR` and `LATEST_YEAR`): the year, stated as the start of the value.
pub const YEAR_PATTERN: &str = r"^(19[0-9]{2}|2[01][0-9]{2})-";

/// Every rule above, applied to the finished document.
pub fn state(doc: &mut OpenApi) {
    add_time_zone_schema(doc);
    add_event_type_schema(doc);
    state_parameters(doc);
    let names = request_schemas(doc);
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in &names {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
            for (field, property) in object.properties.iter_mut() {
                state_field(field, property);
            }
        }
    }
    for body in transition_bodies() {
        split_by_event(doc, body);
    }
}

fn add_time_zone_schema(doc: &mut OpenApi) {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    // Generators make one constant per value; `Etc/GMT+1`, `Etc/GMT-1` and the like
    // would collide once their signs are dropped, so name them.
    let var_names: Vec<String> = names.iter().map(|n| time_zone_constant(n)).collect();
    add_names(
        doc,
        TIME_ZONE_SCHEMA,
        ObjectBuilder::new()
            .enum_values(Some(names))
            .extensions(Some(
                utoipa::openapi::extensions::Extensions::builder()
                    .add("x-enum-varnames", var_names)
                    .build(),
            ))
            .description(Some(
                "An IANA time zone name (the tz database the api is built with), e.g. \
                 `Europe/Zurich`, `America/New_York`, `UTC`.",
            ))
            .examples(["Europe/Zurich"]),
    );
}

fn add_event_type_schema(doc: &mut OpenApi) {
    add_names(
        doc,
        EVENT_TYPE_SCHEMA,
        ObjectBuilder::new()
            .enum_values(Some(entity::domain_event::EVENT_TYPES.to_vec()))
            .description(Some(
                "A domain event type, as the feed's and a delivery's `type` says it.",
            ))
            .examples(["deviation.reported"]),
    );
}

/// A component schema of strings from a closed list (`schema` gives the list).
fn add_names(doc: &mut OpenApi, name: &str, schema: ObjectBuilder) {
    let schema = schema.schema_type(Type::String).build();
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(name.to_string(), RefOr::T(Schema::Object(schema)));
}

/// Query and header parameters: a query string or a header has no null (a parameter is
/// absent or has a value), so a nullable type only makes clients and fuzzers send the
/// text `null`; dates within the years the api takes; the feed's `types` filter is a
/// comma-separated list of event types; a text filter of bounded length is one line.
fn state_parameters(doc: &mut OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    let types = entity::domain_event::EVENT_TYPES
        .iter()
        .map(|t| t.replace('.', r"\."))
        .collect::<Vec<_>>()
        .join("|");
    // Empty: no filter.
    let types_pattern = format!("^(({types})(,({types}))*)?$");
    for item in doc.paths.paths.values_mut() {
        for op in crate::openapi::operations_mut(item) {
            for parameter in op.parameters.iter_mut().flatten() {
                let RefOr::T(parameter) = parameter else {
                    continue;
                };
                if !matches!(
                    parameter.parameter_in,
                    ParameterIn::Query | ParameterIn::Header
                ) {
                    continue;
                }
                let Some(RefOr::T(Schema::Object(o))) = parameter.schema.as_mut() else {
                    continue;
                };
                if let SchemaType::Array(types) = &o.schema_type
                    && types.contains(&Type::Null)
                {
                    let rest: Vec<Type> = types
                        .iter()
                        .filter(|t| **t != Type::Null)
                        .cloned()
                        .collect();
                    o.schema_type = match rest.as_slice() {
                        [one] => SchemaType::Type(one.clone()),
                        _ => SchemaType::Array(rest),
                    };
                }
                state_dates(o);
                if parameter.name == "types" && o.pattern.is_none() {
                    o.pattern = Some(types_pattern.clone());
                }
                // A text filter is one line, as `Checks::text` holds it.
                if parameter.parameter_in == ParameterIn::Query
                    && is_string(&o.schema_type)
                    && o.max_length.is_some()
                    && o.pattern.is_none()
                    && o.format.is_none()
                    && o.enum_values.is_none()
                {
                    o.pattern = Some(ONE_LINE_PATTERN.to_string());
                }
            }
        }
    }
}

/// A date or a time: the years the api takes.
fn state_dates(o: &mut utoipa::openapi::schema::Object) {
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
    if matches!(
        o.format,
        Some(SchemaFormat::KnownFormat(
            KnownFormat::Date | KnownFormat::DateTime
        ))
    ) && o.pattern.is_none()
    {
        o.pattern = Some(YEAR_PATTERN.to_string());
    }
}

/// A constant's name for a zone in generated code: `Europe/Zurich` → `EUROPE_ZURICH`,
/// `Etc/GMT+1` → `ETC_GMT_PLUS_1`.
fn time_zone_constant(name: &str) -> String {
    let mut out = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        let before_digit = chars.peek().is_some_and(char::is_ascii_digit);
        match c {
            '+' if before_digit => out.push_str("_PLUS_"),
            '-' if before_digit => out.push_str("_MINUS_"),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
            _ => out.push('_'),
        }
    }
    out
}

/// The component schemas a request body uses, directly or nested.
fn request_schemas(doc: &OpenApi) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = Vec::new();
    for item in doc.paths.paths.values() {
        for op in [&item.post, &item.put, &item.patch].into_iter().flatten() {
            if let Some(body) = &op.request_body {
                todo.extend(referenced(&serde_json::to_value(body)));
            }
        }
    }
    let schemas = doc.components.as_ref().map(|c| &c.schemas);
    while let Some(name) = todo.pop() {
        if found.insert(name.clone())
            && let Some(schema) = schemas.and_then(|s| s.get(&name))
        {
            todo.extend(referenced(&serde_json::to_value(schema)));
        }
    }
    found
}

fn referenced(value: &Result<serde_json::Value, serde_json::Error>) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref"
                        && let Some(name) = v
                            .as_str()
                            .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        out.push(name.to_string());
                    }
                    walk(v, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = value {
        walk(v, &mut out);
    }
    out
}

fn is_string(t: &SchemaType) -> bool {
    match t {
        SchemaType::Type(Type::String) => true,
        SchemaType::Array(types) => types.contains(&Type::String),
        _ => false,
    }
}

fn state_field(field: &str, property: &mut RefOr<Schema>) {
    if field == "event_types" {
        state_event_types(property);
        return;
    }
    let RefOr::T(Schema::Object(o)) = property else {
        return;
    };
    state_dates(o);
    if !is_string(&o.schema_type) {
        return;
    }
    if field == "time_zone" {
        let nullable = matches!(&o.schema_type, SchemaType::Array(t) if t.contains(&Type::Null));
        let description = o.description.clone();
        let zone = RefOr::Ref(Ref::from_schema_name(TIME_ZONE_SCHEMA));
        *property = if nullable {
            OneOfBuilder::new()
                .item(zone)
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .description(description)
                .into()
        } else {
            zone
        };
        return;
    }
    if o.format.is_some()
        || o.enum_values.is_some()
        || o.pattern.is_some()
        || NOT_TEXT.contains(&field)
    {
        return;
    }
    if let Some(max) = o.max_length {
        o.pattern = Some(
            if max <= ONE_LINE_MAX {
                ONE_LINE_PATTERN
            } else {
                MULTI_LINE_PATTERN
            }
            .to_string(),
        );
    }
}

/// A list of event types (a webhook's subscription): names from the feed's list, each
/// at most once.
fn state_event_types(property: &mut RefOr<Schema>) {
    let RefOr::T(Schema::Array(list)) = property else {
        panic!("event_types is not an array schema");
    };
    list.items = utoipa::openapi::schema::ArrayItems::RefOrSchema(Box::new(RefOr::Ref(
        Ref::from_schema_name(EVENT_TYPE_SCHEMA),
    )));
    list.max_items = Some(entity::domain_event::EVENT_TYPES.len());
    list.unique_items = true;
}

/// A transition body whose fields depend on the event.
struct TransitionBody {
    schema: &'static str,
    /// Per event (wire name): the fields it requires and the fields it does not take.
    events: Vec<(String, Vec<&'static str>, Vec<&'static str>)>,
}

/// The bodies whose event-dependent rules are the machines' own, event by event (rules
/// that depend on the record as well, like a reason for a criticality change, stay in
/// the field descriptions).
fn transition_bodies() -> Vec<TransitionBody> {
    use entity::action_item::{self, ActionEvent};
    use entity::deviation::{self, DeviationEvent};
    use entity::milestone_rules::{self, MilestoneEvent};
    fn when(yes: bool, field: &'static str) -> Vec<&'static str> {
        if yes { vec![field] } else { vec![] }
    }
    /// Per event: (required fields, fields it does not take).
    fn body<E: Copy + serde::Serialize>(
        schema: &'static str,
        events: &[E],
        rules: impl Fn(E) -> (Vec<&'static str>, Vec<&'static str>),
    ) -> TransitionBody {
        let events = events
            .iter()
            .map(|&e| {
                let (required, not_taken) = rules(e);
                (entity::enums::wire_name(&e), required, not_taken)
            })
            .collect();
        TransitionBody { schema, events }
    }
    vec![
        body(
            "ActionTransition",
            &action_item::ALL_EVENTS,
            |e: ActionEvent| {
                let evidence = action_item::takes_evidence(e);
                (
                    when(action_item::requires_reason(e), "reason"),
                    [when(!evidence, "evidence"), when(!evidence, "evidence_url")].concat(),
                )
            },
        ),
        body(
            "MilestoneTransition",
            &milestone_rules::ALL_EVENTS,
            |e: MilestoneEvent| {
                (
                    when(milestone_rules::requires_reason(e), "reason"),
                    when(!milestone_rules::takes_actual_day(e), "on"),
                )
            },
        ),
        body(
            "DeviationTransition",
            &deviation::ALL_EVENTS,
            |e: DeviationEvent| {
                (
                    when(deviation::requires_reason(e), "reason"),
                    when(!deviation::takes_criticality(e), "criticality"),
                )
            },
        ),
    ]
}

/// Replaces the body's object schema by `oneOf` one object per group of events with the
/// same rules: `event` limited to the group, required fields added, fields the group
/// does not take left out (the objects allow no other property).
fn split_by_event(doc: &mut OpenApi, body: TransitionBody) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(base))) = components.schemas.get(body.schema).cloned() else {
        panic!("{} is not an object schema in the document", body.schema);
    };
    // Groups in the order of their first event.
    let mut groups: Vec<(Vec<&'static str>, Vec<&'static str>, Vec<String>)> = Vec::new();
    for (event, required, not_taken) in body.events {
        match groups
            .iter_mut()
            .find(|(r, n, _)| *r == required && *n == not_taken)
        {
            Some((_, _, events)) => events.push(event),
            None => groups.push((required, not_taken, vec![event])),
        }
    }
    let mut one_of = OneOfBuilder::new();
    for (required, not_taken, events) in groups {
        let mut variant = base.clone();
        variant.example = None;
        variant.examples = Vec::new();
        for field in &not_taken {
            assert!(
                variant.properties.remove(*field).is_some(),
                "{} has no field {field}",
                body.schema
            );
        }
        for field in required {
            assert!(variant.properties.contains_key(field));
            if !variant.required.iter().any(|r| r == field) {
                variant.required.push(field.to_string());
            }
        }
        variant.title = Some(format!("{} ({})", body.schema, events.join(", ")));
        variant.properties.insert(
            "event".to_string(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(events))
                .into(),
        );
        one_of = one_of.item(Schema::Object(variant));
    }
    #[allow(deprecated)]
    let split = one_of
        .description(base.description.clone())
        .example(base.example.clone())
        .build();
    components
        .schemas
        .insert(body.schema.to_string(), RefOr::T(Schema::OneOf(split)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(doc: &OpenApi, name: &str) -> serde_json::Value {
        let components = doc.components.as_ref().expect("components");
        serde_json::to_value(&components.schemas[name]).expect("json")
    }

    #[test]
    fn text_fields_say_their_characters_and_passwords_do_not() {
        let doc = crate::openapi::document();
        let report = schema(&doc, "ReportDeviation");
        let props = &report["properties"];
        assert_eq!(props["title"]["pattern"], ONE_LINE_PATTERN);
        assert_eq!(props["description"]["pattern"], MULTI_LINE_PATTERN);
        let sign_in = schema(&doc, "SignIn");
        assert!(sign_in["properties"]["password"].get("pattern").is_none());
        // Every text a request takes states its length, so its pattern follows.
        for name in request_schemas(&doc) {
            let s = schema(&doc, &name);
            for (field, p) in s["properties"].as_object().into_iter().flatten() {
                let is_text = p["type"] == "string"
                    || p["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&"string".into()));
                if is_text && p.get("format").is_none() && p.get("enum").is_none() {
                    assert!(
                        p.get("maxLength").is_some() || p.get("pattern").is_some(),
                        "{name}.{field} states no maxLength"
                    );
                    if !NOT_TEXT.contains(&field.as_str()) {
                        assert!(
                            p.get("pattern").is_some(),
                            "{name}.{field} states no pattern"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn text_filters_say_the_one_line_pattern() {
        let doc = crate::openapi::document();
        for (path, name) in [
            ("/api/v1/audit-events", "entity_type"),
            ("/api/v1/audit-events", "entity_id"),
            ("/api/v1/audit-events", "action"),
            ("/api/v1/signatures", "record_id"),
        ] {
            let json = serde_json::to_value(&doc.paths.paths[path]).expect("json");
            let params = json["get"]["parameters"].as_array().expect("parameters");
            let p = params.iter().find(|p| p["name"] == name).expect(name);
            assert_eq!(p["schema"]["pattern"], ONE_LINE_PATTERN, "{path} {name}");
        }
    }

    #[test]
    fn time_zones_are_the_names_the_api_knows() {
        let doc = crate::openapi::document();
        let zones = schema(&doc, TIME_ZONE_SCHEMA);
        let names = zones["enum"].as_array().expect("enum");
        assert!(names.contains(&"Europe/Zurich".into()) && names.contains(&"UTC".into()));
        for name in names {
            assert!(
                name.as_str()
                    .expect("text")
                    .parse::<chrono_tz::Tz>()
                    .is_ok()
            );
        }
        let constants = zones["x-enum-varnames"].as_array().expect("names");
        let distinct: BTreeSet<&str> = constants.iter().filter_map(|c| c.as_str()).collect();
        assert_eq!(distinct.len(), names.len(), "constant names collide");
        assert!(distinct.contains("ETC_GMT_PLUS_1") && distinct.contains("ETC_GMT_MINUS_1"));
        assert!(
            distinct
                .iter()
                .all(|c| c.starts_with(|ch: char| ch.is_ascii_alphabetic()))
        );
        let program = schema(&doc, "CreateProgram");
        assert_eq!(
            program["properties"]["time_zone"]["$ref"],
            "#/components/schemas/TimeZoneName"
        );
        let user = schema(&doc, "UpdateUser");
        assert_eq!(
            user["properties"]["time_zone"]["oneOf"][0]["$ref"],
            "#/components/schemas/TimeZoneName"
        );
    }

    #[test]
    fn an_action_transition_takes_evidence_only_to_complete() {
        let doc = crate::openapi::document();
        let body = schema(&doc, "ActionTransition");
        let variants = body["oneOf"].as_array().expect("oneOf");
        let find = |event: &str| {
            variants
                .iter()
                .find(|v| {
                    v["properties"]["event"]["enum"]
                        .as_array()
                        .expect("enum")
                        .contains(&event.into())
                })
                .unwrap_or_else(|| panic!("no variant for {event}"))
        };
        let complete = find("complete");
        assert!(complete["properties"].get("evidence_url").is_some());
        assert!(
            !complete["required"]
                .as_array()
                .expect("required")
                .contains(&"reason".into())
        );
        let cancel = find("cancel");
        assert!(cancel["properties"].get("evidence").is_none());
        assert!(
            cancel["required"]
                .as_array()
                .expect("required")
                .contains(&"reason".into())
        );
        assert_eq!(cancel, find("reopen"));
        assert_eq!(find("start")["properties"].get("evidence"), None);
        assert_eq!(variants.len(), 3);
        let milestone = schema(&doc, "MilestoneTransition");
        let with_day = milestone["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .filter(|v| v["properties"].get("on").is_some())
            .flat_map(|v| {
                v["properties"]["event"]["enum"]
                    .as_array()
                    .expect("enum")
                    .clone()
            })
            .collect::<Vec<_>>();
        assert_eq!(with_day, ["start", "complete"]);
    }
}

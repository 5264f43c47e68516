//! The OpenAPI schema of an event on the wire ([`EventView`]): one object schema per event
//! type (`DeviationReportedEvent`, …) holding the common fields, its `type` and its
//! `payload`, joined in a `oneOf` with a `type` discriminator. Generated clients (Python,
//! TypeScript) then get one typed model per event type; the derived schema, the common
//! fields `allOf` a `oneOf`, is one that generators refuse ("cannot take allOf a
//! non-object"). Built from [`Event`]'s derived schema, so a new event type needs nothing here.

use std::collections::BTreeMap;

use utoipa::openapi::schema::{
    Discriminator, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::domain_event::{Event, EventView};

/// Each event type: its wire name (`deviation.reported`), its schema name
/// (`DeviationReportedEvent`) and its payload's schema, in [`Event`]'s order.
fn variants() -> Vec<(String, String, RefOr<Schema>)> {
    let RefOr::T(Schema::OneOf(one_of)) = <Event as PartialSchema>::schema() else {
        return Vec::new();
    };
    one_of
        .items
        .into_iter()
        .filter_map(|item| {
            let RefOr::T(Schema::Object(variant)) = item else {
                return None;
            };
            let RefOr::T(Schema::Object(type_schema)) = variant.properties.get("type")? else {
                return None;
            };
            let wire = type_schema
                .enum_values
                .as_ref()?
                .first()?
                .as_str()?
                .to_string();
            let payload = variant.properties.get("payload")?.clone();
            Some((wire.clone(), schema_name(&wire), payload))
        })
        .collect()
}

/// `deviation.reported` → `DeviationReportedEvent`.
fn schema_name(wire: &str) -> String {
    let mut name: String = wire
        .split(['.', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    name.push_str("Event");
    name
}

fn variant_schema(
    wire: &str,
    payload: RefOr<Schema>,
    payload_example: Option<serde_json::Value>,
) -> RefOr<Schema> {
    let integer = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
    };
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let example = serde_json::json!({
        "cursor": 1042, "type": wire, "program_id": 3, "resource_type": "deviation",
        "resource_id": "41", "payload": payload_example.unwrap_or_default(),
        "occurred_at": "2026-11-28T02:00:00Z"});
    // `example`, as every derived schema of the document writes it.
    #[allow(deprecated)]
    ObjectBuilder::new()
        .description(Some(format!("A `{wire}` event, in the feed and in webhook bodies.")))
        .example(Some(example))
        .property(
            "cursor",
            integer().description(Some(
                "Increases as events become visible: an event that commits later never gets a smaller cursor than one you have seen. Pass the last one you saw as `after`. Webhooks send it as `webhook-id` (and the deprecated `X-Cmo-Event-Id`).",
            )),
        )
        .required("cursor")
        .property(
            "type",
            string().enum_values(Some([wire])).description(Some("The event type.")),
        )
        .required("type")
        .property(
            "program_id",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::Integer,
                    Type::Null,
                ]))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .description(Some("The program it belongs to; null for a CMO-wide event.")),
        )
        .required("program_id")
        .property("resource_type", string().examples(["deviation"]))
        .required("resource_type")
        .property("resource_id", string().examples(["41"]))
        .required("resource_id")
        .property("payload", payload)
        .required("payload")
        .property(
            "occurred_at",
            string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .required("occurred_at")
        .into()
}

impl PartialSchema for EventView {
    fn schema() -> RefOr<Schema> {
        let mut mapping = BTreeMap::new();
        let mut one_of = OneOfBuilder::new();
        for (wire, name, _) in variants() {
            mapping.insert(wire, format!("#/components/schemas/{name}"));
            one_of = one_of.item(Ref::from_schema_name(name));
        }
        let mut discriminator = Discriminator::new("type");
        discriminator.mapping = mapping;
        // `example`, as every derived schema of the document writes it.
        #[allow(deprecated)]
        one_of
            .discriminator(Some(discriminator))
            .description(Some(
                "One event: `type` says which, and which `payload` schema it carries.",
            ))
            .example(Some(serde_json::json!({
                "cursor": 1042, "type": "deviation.reported", "program_id": 3,
                "resource_type": "deviation", "resource_id": "41",
                "payload": {"deviation_id": 41, "title": "Bioburden excursion",
                    "criticality": "critical", "category": "equipment",
                    "detected_at": "2026-11-28T01:55:00Z"},
                "occurred_at": "2026-11-28T02:00:00Z"})))
            .into()
    }
}

impl ToSchema for EventView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        // The payload schemas.
        <Event as ToSchema>::schemas(schemas);
        #[allow(deprecated)]
        let example_of = |payload: &RefOr<Schema>| {
            let RefOr::Ref(r) = payload else { return None };
            let name = r.ref_location.rsplit('/').next()?;
            schemas
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, s)| match s {
                    RefOr::T(Schema::Object(o)) => o.example.clone(),
                    _ => None,
                })
        };
        let built: Vec<_> = variants()
            .into_iter()
            .map(|(wire, name, payload)| {
                let example = example_of(&payload);
                (name, variant_schema(&wire, payload, example))
            })
            .collect();
        schemas.extend(built);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_its_own_named_schema() {
        let all = variants();
        assert_eq!(all.len(), super::super::domain_event::EVENT_TYPES.len());
        assert!(all.iter().any(
            |(wire, name, _)| wire == "deviation.reported" && name == "DeviationReportedEvent"
        ));
        assert_eq!(schema_name("action_item.overdue"), "ActionItemOverdueEvent");
        assert_eq!(
            schema_name("cmo.qualification_changed"),
            "CmoQualificationChangedEvent"
        );
    }
}

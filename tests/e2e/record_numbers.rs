//! Human record numbers: DEV-2026-0001, CAPA-2026-0001, CC-2026-0001, per sponsor and year
//! in the program's zone, in the API, on pages and in what people read; ids stay.

use chrono::TimeDelta;
use e2e::{TestApp, on_both_databases, utc};
use entity::link_token::PageRecord;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::quality::report;
use crate::{partner_org, user_with_token};

fn number(v: &Value) -> &str {
    v["number"]
        .as_str()
        .unwrap_or_else(|| panic!("no number: {v}"))
}

async fn records_are_numbered_per_sponsor_kind_and_local_year(app: &TestApp) {
    // REQ: QE-RECORD-NUMBERS
    let s = program_setup(app).await;
    let devs = format!("/api/v1/programs/{}/deviations", s.program_id);
    let first =
        s.pm.post(&devs, report("Bioburden excursion", "minor", app.now()))
            .await
            .expect(201)
            .body;
    let second =
        s.pm.post(&devs, report("Label mix-up", "minor", app.now()))
            .await
            .expect(201)
            .body;
    assert_eq!(
        (number(&first), number(&second)),
        ("DEV-2026-0001", "DEV-2026-0002")
    );
    let capa =
        s.pm.post(
            &format!("/api/v1/programs/{}/capas", s.program_id),
            json!({"title": "Replace gaskets", "description": "c", "source": "audit_finding", "finding_reference": "Supplier audit 2026-11, item 3"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(
        number(&capa),
        "CAPA-2026-0001",
        "each kind its own sequence"
    );
    let change = s
        .pm
        .post(
            &format!("/api/v1/programs/{}/change-requests", s.program_id),
            json!({"title": "Switch filter supplier", "description": "B", "justification": "A stops", "classification": "minor"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(number(&change), "CC-2026-0001");
    // GET answers the same number; the id stays the key.
    let read =
        s.pm.get(&format!("/api/v1/deviations/{}", second["id"]))
            .await
            .expect(200)
            .body;
    assert_eq!(number(&read), "DEV-2026-0002");

    // The year is the program's: at 22:30 UTC on 31 December it is already 2027 in
    // Auckland, still 2026 in Zurich. A second program of the same sponsor, in Auckland.
    let cmo =
        s.pm.get(&format!("/api/v1/programs/{}", s.program_id))
            .await
            .body["cmo_org_id"]
            .clone();
    let auckland = s
        .pm
        .post(
            "/api/v1/programs",
            json!({"name": "ACM-202", "product_name": "ACM-202", "cmo_org_id": cmo, "modality": "biologic",
                   "stage": "clinical", "budget_minor": 1, "currency": "USD", "time_zone": "Pacific/Auckland"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap();
    app.clock.set(utc("2026-12-31T22:30:00Z"));
    let zurich_late =
        s.pm.post(&devs, report("Late on new year's eve", "minor", app.now()))
            .await
            .expect(201)
            .body;
    let auckland_first =
        s.pm.post(
            &format!("/api/v1/programs/{auckland}/deviations"),
            report("First of the new year", "minor", app.now()),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(number(&zurich_late), "DEV-2026-0003");
    assert_eq!(number(&auckland_first), "DEV-2027-0001");

    // Another sponsor counts on its own: its first deviation of 2026 is its 0001.
    let (_, _, beta_token) = partner_org(app, "Beta Pharma", "sponsor", "admin@beta.test").await;
    let beta = app.client(&beta_token);
    let beta_cmo = beta
        .post(
            "/api/v1/organizations",
            json!({"name": "Beta CMO", "kind": "cmo", "admin": {"email": "qa@betacmo.test", "display_name": "Q"}}),
        )
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap();
    for event in ["start_evaluation", "qualify"] {
        beta.post(
            &format!("/api/v1/cmos/{beta_cmo}/qualification"),
            json!({"event": event}),
        )
        .await
        .expect(200);
    }
    let beta_program = beta
        .post(
            "/api/v1/programs",
            json!({"name": "B-1", "product_name": "B-1", "cmo_org_id": beta_cmo, "modality": "biologic",
                   "stage": "clinical", "budget_minor": 1, "currency": "USD", "time_zone": "UTC"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap();
    let beta_dev = beta
        .post(
            &format!("/api/v1/programs/{beta_program}/deviations"),
            report("Beta's own", "minor", app.now()),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(number(&beta_dev), "DEV-2026-0001");

    // People look a record up by the number they were told, in any letter case; another
    // sponsor's record of the same number stays invisible.
    let found =
        s.pm.get("/api/v1/deviations?number=dev-2026-0001")
            .await
            .expect(200)
            .body;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["items"][0]["id"], first["id"]);
    let found = beta
        .get("/api/v1/deviations?number=DEV-2026-0001")
        .await
        .expect(200)
        .body;
    assert_eq!(found["items"][0]["id"], beta_dev["id"]);
    assert_eq!(found["total"], 1);
    let found =
        s.pm.get("/api/v1/capas?number=CAPA-2026-0001")
            .await
            .expect(200)
            .body;
    assert_eq!(found["items"][0]["id"], capa["id"]);
    let found =
        s.pm.get("/api/v1/change-requests?number=CC-2026-0001")
            .await
            .expect(200)
            .body;
    assert_eq!(found["items"][0]["id"], change["id"]);
    // What cannot be a number is refused with the form it takes (a NUL byte would otherwise
    // reach PostgreSQL), as the schema's pattern says.
    s.pm.get("/api/v1/deviations?number=DEV%002026")
        .await
        .expect_problem(422, "validation_failed");
    s.pm.get(&format!("/api/v1/deviations?number={}", "9".repeat(25)))
        .await
        .expect_problem(422, "validation_failed");

    // The page people open from an email says the number.
    let (lea, _) = user_with_token(app, "lea@acme.test", "quality", None).await;
    let link = app
        .page_link(
            PageRecord::Deviation,
            first["id"].as_i64().unwrap(),
            lea,
            TimeDelta::days(7),
        )
        .await;
    let text = app.page(&link, None).await.expect(200).html_text();
    assert!(text.contains("DEV-2026-0001"), "{text}");
}
on_both_databases!(records_are_numbered_per_sponsor_kind_and_local_year);

/// Records from before numbers existed (or from an older release during a rolling upgrade)
/// are numbered in creation order, continuing the sequence, once, however many processes
/// number at the same time; numbers taken concurrently are distinct and without gaps.
async fn existing_records_are_numbered_once_in_creation_order(app: &TestApp) {
    // REQ: QE-RECORD-NUMBERS
    let s = program_setup(app).await;
    let devs = format!("/api/v1/programs/{}/deviations", s.program_id);
    let mut ids = Vec::new();
    for title in ["Oldest", "Middle", "Newest"] {
        let d =
            s.pm.post(&devs, report(title, "minor", app.now()))
                .await
                .expect(201)
                .body;
        ids.push(d["id"].as_i64().unwrap());
    }
    // As the migration leaves them: no numbers, no counter.
    for id in &ids {
        let mut row = entity::deviation::Entity::find_by_id(*id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        row.record_number = Set(None);
        row.update(&app.db).await.unwrap();
    }
    use sea_orm::ConnectionTrait;
    app.db
        .execute_unprepared("DELETE FROM record_number_counters")
        .await
        .unwrap();
    let listed =
        s.pm.get(&format!("/api/v1/deviations/{}", ids[0]))
            .await
            .expect(200)
            .body;
    assert_eq!(listed["number"], Value::Null, "unnumbered until numbered");
    // An api starting and a worker passing at once.
    let (a, b) = tokio::join!(
        entity::record_number::number_unnumbered(&app.db),
        entity::record_number::number_unnumbered(&app.db)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 3, "each record numbered once");
    for (id, want) in ids
        .iter()
        .zip(["DEV-2026-0001", "DEV-2026-0002", "DEV-2026-0003"])
    {
        let d =
            s.pm.get(&format!("/api/v1/deviations/{id}"))
                .await
                .expect(200)
                .body;
        assert_eq!(number(&d), want, "creation order");
    }
    assert_eq!(
        entity::record_number::number_unnumbered(&app.db)
            .await
            .unwrap(),
        0,
        "nothing left"
    );
    // The sequence goes on from there, and concurrent reports take distinct numbers.
    let reports = (0..8).map(|i| {
        let pm = s.pm.clone();
        let devs = devs.clone();
        let body = report(&format!("Concurrent {i}"), "minor", app.now());
        async move { pm.post(&devs, body).await.expect(201).body }
    });
    let mut numbers: Vec<String> = futures_util::future::join_all(reports)
        .await
        .iter()
        .map(|d| number(d).to_string())
        .collect();
    numbers.sort();
    let want: Vec<String> = (4..12).map(|n| format!("DEV-2026-{n:04}")).collect();
    assert_eq!(numbers, want);
}
on_both_databases!(existing_records_are_numbered_once_in_creation_order);

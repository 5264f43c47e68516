//! Paging through lists: a cursor neither misses nor repeats a row while rows arrive,
//! every list walks by cursor exactly as it reads whole, the total is given when asked
//! or free, and a cursor that is not the list's own is a 422.

use std::collections::HashSet;

use chrono::TimeDelta;
use e2e::{TestApp, on_both_databases};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::quality::report;

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["id"].as_i64().expect("id"))
        .collect()
}

async fn a_cursor_neither_misses_nor_repeats_while_rows_arrive(app: &TestApp) {
    // REQ: API-LIST-CURSOR
    let s = program_setup(app).await;
    let devs = format!("/api/v1/programs/{}/deviations", s.program_id);
    let base = app.now() - TimeDelta::hours(3);
    // Seven deviations, two of them at each instant: the order's ties go by id.
    let mut known: Vec<(chrono::DateTime<chrono::Utc>, i64)> = Vec::new();
    for n in 0..7 {
        let at = base + TimeDelta::minutes(10 * (n / 2));
        let d = s
            .cmo_admin
            .post(&devs, report(&format!("Label count {n}"), "minor", at))
            .await
            .expect(201)
            .body;
        known.push((at, d["id"].as_i64().unwrap()));
    }
    let newest_first = |list: &[(chrono::DateTime<chrono::Utc>, i64)]| {
        let mut l = list.to_vec();
        l.sort_by(|a, b| b.cmp(a));
        l.into_iter().map(|(_, id)| id).collect::<Vec<i64>>()
    };

    let first =
        s.pm.get("/api/v1/deviations?limit=3")
            .await
            .expect(200)
            .body;
    assert_eq!(ids(&first), newest_first(&known)[..3]);
    assert_eq!(first["total"], Value::Null, "a full page is not counted");
    let mut cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();

    // Between pages: one deviation newer than everything (before the cursor: not in the
    // pages that follow) and one older than everything (after it: in the last page).
    s.cmo_admin
        .post(&devs, report("Newest", "minor", app.now()))
        .await
        .expect(201);
    let oldest = s
        .cmo_admin
        .post(&devs, report("Oldest", "minor", base - TimeDelta::hours(1)))
        .await
        .expect(201)
        .body;
    known.push((base - TimeDelta::hours(1), oldest["id"].as_i64().unwrap()));

    let mut walked = ids(&first);
    let mut pages = 1;
    loop {
        let page =
            s.pm.get(&format!("/api/v1/deviations?limit=3&cursor={cursor}"))
                .await
                .expect(200)
                .body;
        pages += 1;
        assert!(pages <= 10, "the cursor walk does not end");
        assert_eq!(page["total"], Value::Null, "a cursor page is not counted");
        assert_eq!(page["offset"], 0);
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(walked, newest_first(&known), "every row once, in order");
    assert_eq!(pages, 3);

    // The total: counted when asked, free when a page read from the start ends the list.
    let counted =
        s.pm.get("/api/v1/deviations?limit=3&count=true")
            .await
            .expect(200)
            .body;
    assert_eq!(counted["total"], 9);
    let whole = s.pm.get("/api/v1/deviations").await.expect(200).body;
    assert_eq!(whole["total"], 9);
    assert_eq!(whole["next_cursor"], Value::Null);
    let tail =
        s.pm.get("/api/v1/deviations?offset=6")
            .await
            .expect(200)
            .body;
    assert_eq!((tail["total"].as_u64(), ids(&tail).len()), (Some(9), 3));
    let past =
        s.pm.get("/api/v1/deviations?offset=60")
            .await
            .expect(200)
            .body;
    assert_eq!(
        past["total"],
        Value::Null,
        "past the end the total is unknown"
    );
    let past =
        s.pm.get("/api/v1/deviations?offset=60&count=true")
            .await
            .expect(200)
            .body;
    assert_eq!(past["total"], 9);

    // A cursor works with the list's filters.
    let minor =
        s.pm.get("/api/v1/deviations?criticality=minor&limit=8")
            .await
            .expect(200)
            .body;
    let next = minor["next_cursor"]
        .as_str()
        .expect("a ninth minor deviation");
    let rest =
        s.pm.get(&format!(
            "/api/v1/deviations?criticality=minor&cursor={next}"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&rest), [oldest["id"].as_i64().unwrap()]);

    // Cursors that are not this list's own, and a cursor with an offset: 422 naming the
    // parameter, never a 500.
    let capas = s.pm.get("/api/v1/capas?limit=1").await.expect(200).body;
    assert_eq!(capas["next_cursor"], Value::Null);
    // A list kept in memory (the CMO registry after its tag filters) pages too.
    crate::partner_org(app, "Catalent Bloomington", "cmo", "pm@catalent.test").await;
    let registry = s.pm.get("/api/v1/cmos?limit=1").await.expect(200).body;
    assert_eq!(registry["total"], 2);
    let registry_cursor = registry["next_cursor"].as_str().expect("two CMOs");
    let rest =
        s.pm.get(&format!("/api/v1/cmos?limit=1&cursor={registry_cursor}"))
            .await
            .expect(200)
            .body;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_ne!(rest["items"][0]["org_id"], registry["items"][0]["org_id"]);
    for (query, field) in [
        ("cursor=bm90IGEgY3Vyc29y".to_string(), "cursor"),
        ("cursor=%%%".to_string(), "cursor"),
        (format!("cursor={registry_cursor}"), "cursor"),
        (format!("cursor={cursor}&offset=3"), "offset"),
    ] {
        let r =
            s.pm.get(&format!("/api/v1/deviations?{query}"))
                .await
                .expect_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{query}");
    }
    // A deviation cursor (a time and an id) on lists keyed otherwise.
    for list in [
        "/api/v1/capas",
        "/api/v1/action-items",
        "/api/v1/plan-templates",
    ] {
        let r =
            s.pm.get(&format!("{list}?cursor={cursor}"))
                .await
                .expect_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "cursor", "{list}");
    }
    s.pm.get("/api/v1/deviations?count=maybe")
        .await
        .expect_problem(422, "validation_failed");
}
on_both_databases!(a_cursor_neither_misses_nor_repeats_while_rows_arrive);

/// The list operations of the committed OpenAPI document (a 200 that is a page).
fn list_paths(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        let Some(schema) =
            ops["get"]["responses"]["200"]["content"]["application/json"].get("schema")
        else {
            continue;
        };
        let props = match schema["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()]["properties"],
            None => &schema["properties"],
        };
        let takes_cursor = ops["get"]["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "cursor"));
        if props.get("next_cursor").is_some() && takes_cursor {
            out.push(path.clone());
        }
    }
    out
}

/// Every list of the API, walked one item per page by cursor, gives the items of the
/// whole list in the same order, each once; its counted total agrees. Generated from the
/// committed OpenAPI document, so a new list is walked without being named here.
async fn every_list_walks_by_cursor_as_it_reads_whole(app: &TestApp) {
    // REQ: API-LIST-CURSOR
    let (ids_of, _) = crate::tenancy::seed_every_kind(app).await;
    let admin = app.admin();
    let program = ids_of["programs"];
    // A second row in lists keyed by position, date, text and time, with ties.
    let today = app.today_in("Europe/Zurich");
    for name in ["Engineering run", "PPQ"] {
        admin
            .post(
                &format!("/api/v1/programs/{program}/milestones"),
                json!({"name": name, "phase": "Readiness", "baseline_start": today, "baseline_end": today}),
            )
            .await
            .expect(201);
    }
    let me = admin.get("/api/v1/me").await.expect(200).body;
    for title in ["Order resin", "Book the suite"] {
        admin
            .post(
                &format!("/api/v1/programs/{program}/action-items"),
                json!({"title": title, "owner_user_id": me["user"]["id"], "due_date": today + TimeDelta::days(3)}),
            )
            .await
            .expect(201);
    }
    admin
        .post(
            &format!("/api/v1/programs/{program}/team"),
            json!({"user_id": me["user"]["id"], "governance_tier": "leadership", "program_role": "Sponsor"}),
        )
        .await
        .expect(201);
    let at = app.now() - TimeDelta::hours(1);
    for title in ["Particles in vial", "Torn glove"] {
        admin
            .post(
                &format!("/api/v1/programs/{program}/deviations"),
                report(title, "major", at),
            )
            .await
            .expect(201);
    }

    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../openapi/openapi.json"
        ))
        .expect("the committed OpenAPI document"),
    )
    .expect("JSON");
    let lists = list_paths(&doc);
    assert!(lists.len() >= 25, "found only {} lists", lists.len());
    let mut walked_several = Vec::new();
    for path in &lists {
        let url = if path.contains('{') {
            match crate::tenancy::fill(path, &ids_of) {
                Some(url) => url,
                None => panic!("no id to fill {path} with"),
            }
        } else {
            path.clone()
        };
        let whole = admin.get(&format!("{url}?limit=200")).await;
        if whole.status == 403 {
            continue;
        }
        let whole = whole.expect(200).body;
        let items = whole["items"].as_array().expect("items").clone();
        assert_eq!(whole["next_cursor"], Value::Null, "{url}: fits in one page");
        assert_eq!(whole["total"], items.len(), "{url}: free total");
        let counted = admin
            .get(&format!("{url}?limit=1&count=true"))
            .await
            .expect(200)
            .body;
        assert_eq!(counted["total"], items.len(), "{url}: counted total");
        let mut walked = counted["items"].as_array().unwrap().clone();
        let mut cursor = counted["next_cursor"].as_str().map(String::from);
        while let Some(c) = cursor {
            assert!(walked.len() <= items.len(), "{url}: the walk does not end");
            let page = admin
                .get(&format!("{url}?limit=1&cursor={c}"))
                .await
                .expect(200)
                .body;
            walked.extend(page["items"].as_array().unwrap().iter().cloned());
            cursor = page["next_cursor"].as_str().map(String::from);
        }
        let key = |v: &Value| v.get("id").cloned().unwrap_or_else(|| v.clone());
        let seen: HashSet<String> = walked.iter().map(|v| key(v).to_string()).collect();
        assert_eq!(seen.len(), walked.len(), "{url}: an item twice");
        assert_eq!(
            walked.iter().map(key).collect::<Vec<_>>(),
            items.iter().map(key).collect::<Vec<_>>(),
            "{url}: the cursor walk differs from the whole list"
        );
        if items.len() >= 2 {
            walked_several.push(url);
        }
    }
    // The walk proved cursors on every kind of key: time, date, position, text, sequence.
    for must in [
        "/api/v1/deviations",
        "/api/v1/escalations",
        "/api/v1/action-items",
        "/api/v1/audit-events",
        "/api/v1/users",
        &format!("/api/v1/programs/{program}/milestones"),
        &format!("/api/v1/programs/{program}/team"),
    ] {
        assert!(
            walked_several.iter().any(|u| u == must),
            "{must} had fewer than two items: the walk proved nothing there ({walked_several:?})"
        );
    }
}
on_both_databases!(every_list_walks_by_cursor_as_it_reads_whole);

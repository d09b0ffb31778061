//! `GET /openapi.json` through the running binary: a 3.x document generated
//! from the routes, listing every agent and admin endpoint (issue 4).

use serde_json::Value;
use tap_testkit::{FakeUpstream, SPEC_ROUTES, TapHome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_route() {
    let _up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tokio::task::block_in_place(|| tap.init());
    let served = tap.serve();
    let r = served.get("/openapi.json", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    let doc: Value = r.json();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi {version:?}");
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(doc["info"]["version"].is_string(), "{}", doc["info"]);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in SPEC_ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing; paths: {:?}", paths.keys()));
        for m in *methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path} missing: {item}");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path} has no responses"
            );
        }
        // Path parameters are declared.
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            let declared = methods.iter().all(|m| {
                item[*m]["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"))
            });
            assert!(declared, "{path}: parameter {name} not declared: {item}");
        }
    }
    // The admin routes say they take a bearer token, and the scheme exists.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    let sec = &paths["/team/credentials"]["get"]["security"];
    assert!(sec.to_string().contains("bearer"), "{sec}");
    // Every operation id is unique (a valid document needs it).
    let mut ids: Vec<String> = paths
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|o| o.values()))
        .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate operationId");
    assert_eq!(served.terminate(), Some(0));
}

//! `/openapi.json` documents the request and response bodies of the
//! governance routes (policies, grants, members, links, channels) with the
//! admin service's typed commands and views.

use serde_json::Value;
use tap_proxy::server::api_router;

/// `(path, method, request schema when it takes a body, success status, response schema)`.
const ROUTES: &[(&str, &str, Option<&str>, &str, &str)] = &[
    (
        "/team/policies/{credential}",
        "get",
        None,
        "200",
        "PolicyView",
    ),
    (
        "/team/policies/{credential}",
        "put",
        Some("SetPolicy"),
        "200",
        "PolicyView",
    ),
    (
        "/team/policies/{credential}",
        "delete",
        None,
        "200",
        "PolicyClearedView",
    ),
    (
        "/team/credentials/{name}/grants",
        "post",
        Some("CreateGrant"),
        "201",
        "GrantView",
    ),
    ("/team/grants", "get", None, "200", "GrantView"),
    ("/team/grants/{id}/revoke", "post", None, "200", "GrantView"),
    ("/team/members", "get", None, "200", "MemberView"),
    (
        "/team/members",
        "post",
        Some("InviteMember"),
        "201",
        "InvitedView",
    ),
    (
        "/team/members/{email}/role",
        "put",
        Some("ChangeRole"),
        "200",
        "MemberView",
    ),
    (
        "/team/members/{email}",
        "delete",
        None,
        "200",
        "MemberRemovedView",
    ),
    (
        "/team/members/{email}/credentials",
        "put",
        Some("MemberCredentials"),
        "200",
        "MemberView",
    ),
    ("/team/links", "get", None, "200", "LinkView"),
    ("/team/links", "post", Some("CreateLink"), "201", "LinkView"),
    (
        "/team/links/{home_team}/{agent_id}",
        "delete",
        None,
        "200",
        "LinkRemovedView",
    ),
    (
        "/team/notification-channels",
        "get",
        None,
        "200",
        "ChannelView",
    ),
    (
        "/team/notification-channels",
        "post",
        Some("CreateChannel"),
        "201",
        "ChannelView",
    ),
    (
        "/team/notification-channels/{name}",
        "delete",
        None,
        "200",
        "ChannelRemovedView",
    ),
    (
        "/team/notification-channels/{name}/test",
        "post",
        None,
        "200",
        "ChannelTestedView",
    ),
];

/// The schema names a JSON content object refers to (directly or as array items).
fn refs(content: &Value) -> String {
    content["application/json"]["schema"].to_string()
}

#[test]
fn governance_routes_document_their_bodies() {
    let (_, api) = api_router();
    let doc = serde_json::to_value(&api).unwrap_or_default();
    let schemas = &doc["components"]["schemas"];
    for (path, method, request, status, response) in ROUTES {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        if let Some(req) = request {
            let got = refs(&op["requestBody"]["content"]);
            assert!(
                got.contains(&format!("#/components/schemas/{req}")),
                "{method} {path} request: {got}"
            );
            assert!(schemas.get(*req).is_some(), "schema {req} missing");
        }
        let got = refs(&op["responses"][status]["content"]);
        assert!(
            got.contains(&format!("#/components/schemas/{response}")),
            "{method} {path} {status}: {got}"
        );
        assert!(
            schemas.get(*response).is_some(),
            "schema {response} missing"
        );
    }
    // A few schemas, field by field.
    let props = |name: &str| -> Vec<String> {
        schemas[name]["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    for field in [
        "id",
        "methods",
        "route_scope",
        "expires_at",
        "revoked",
        "active",
    ] {
        assert!(
            props("GrantView").contains(&field.to_owned()),
            "GrantView.{field}"
        );
    }
    let required = schemas["CreateGrant"]["required"].to_string();
    for field in ["methods", "route_scope", "ttl_minutes"] {
        assert!(
            required.contains(field),
            "CreateGrant requires {field}: {required}"
        );
    }
    assert!(props("PolicyRules").contains(&"min_approvals".to_owned()));
    assert!(props("ChannelView").contains(&"type".to_owned()));
    // Views never describe a value, a key or a hash.
    for name in [
        "MemberView",
        "TokenView",
        "LinkView",
        "ChannelView",
        "GrantView",
    ] {
        for p in props(name) {
            assert!(
                !["value", "api_key", "token_hash", "password_hash"].contains(&p.as_str()),
                "{name}.{p}"
            );
        }
    }
}

//! Bad input gets a Kubernetes `Status` with kube's code and reason, and writes nothing.

use std::time::Duration;

use flotilla_conformance_tests::{Backend, TestApiserver, eventually};

crate::on_both_backends!(
    bad_requests_get_kube_statuses_and_write_nothing,
    unauthenticated_requests_get_401,
    compacted_revisions_are_410_expired,
);

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[track_caller]
fn assert_status(response: &flotilla_conformance_tests::HttpResponse, code: u16, reason: &str) {
    assert_eq!(response.code, code, "{}", response.body);
    let status = response.json();
    assert_eq!(status["kind"], "Status", "{}", response.body);
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], code);
    assert_eq!(status["reason"], reason, "{}", response.body);
}

async fn post(
    server: &TestApiserver,
    path: &str,
    content_type: &str,
    body: &str,
) -> flotilla_conformance_tests::HttpResponse {
    let header = format!("Content-Type: {content_type}");
    server
        .curl(&[path, "-X", "POST", "-H", &header, "--data-binary", body])
        .await
        .unwrap()
}

async fn count_configmaps(server: &TestApiserver) -> usize {
    server.curl(&[CMS]).await.unwrap().json()["items"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn bad_requests_get_kube_statuses_and_write_nothing(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    let json = "application/json";

    assert_status(&post(&server, CMS, json, "{not json").await, 400, "BadRequest");
    let kind = post(
        &server,
        CMS,
        json,
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"}}"#,
    )
    .await;
    assert_status(&kind, 400, "BadRequest");
    let version = post(
        &server,
        CMS,
        json,
        r#"{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"a"}}"#,
    )
    .await;
    assert_status(&version, 400, "BadRequest");
    let namespace = post(
        &server,
        CMS,
        json,
        r#"{"metadata":{"name":"a","namespace":"other"}}"#,
    )
    .await;
    assert_status(&namespace, 400, "BadRequest");
    let bad_name = post(&server, CMS, json, r#"{"metadata":{"name":"Not_A_Name"}}"#).await;
    assert_status(&bad_name, 422, "Invalid");
    let causes = &bad_name.json()["details"]["causes"];
    assert_eq!(causes[0]["field"], "metadata.name", "{}", bad_name.body);
    let no_name = post(&server, CMS, json, r#"{"data":{"a":"b"}}"#).await;
    assert_status(&no_name, 422, "Invalid");
    assert_status(
        &post(&server, CMS, "application/xml", "<a/>").await,
        415,
        "UnsupportedMediaType",
    );
    let huge = format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(3 << 20)
    );
    let body_file = server.dir().join("huge.json");
    std::fs::write(&body_file, huge).unwrap();
    let too_large = server
        .curl(&[
            CMS,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", body_file.display()),
        ])
        .await
        .unwrap();
    assert_status(&too_large, 413, "RequestEntityTooLarge");
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let wrong_shape = post(
        &server,
        deployments,
        json,
        r#"{"metadata":{"name":"d"},"spec":"x"}"#,
    )
    .await;
    assert_status(&wrong_shape, 400, "BadRequest");
    assert!(
        wrong_shape.json()["message"]
            .as_str()
            .unwrap()
            .contains("cannot be handled as a Deployment")
    );
    let listed = server.curl(&[deployments]).await.unwrap().json();
    assert_eq!(listed["items"].as_array().map_or(0, Vec::len), 0);
    assert_eq!(
        count_configmaps(&server).await,
        0,
        "no refused request wrote anything"
    );

    // No Content-Type is JSON (the Python client sends none).
    let created = server
        .curl(&[
            CMS,
            "-X",
            "POST",
            "-H",
            "Content-Type:",
            "--data-binary",
            r#"{"metadata":{"name":"a"},"data":{"k":"v"}}"#,
        ])
        .await
        .unwrap();
    assert_eq!(created.code, 201, "{}", created.body);
    let again = post(&server, CMS, json, r#"{"metadata":{"name":"a"}}"#).await;
    assert_status(&again, 409, "AlreadyExists");
    assert_eq!(again.json()["details"]["name"], "a");
    let rv = created.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .curl(&[
            &format!("{CMS}/a"),
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/merge-patch+json",
            "-d",
            r#"{"data":{"k":"v2"}}"#,
        ])
        .await
        .unwrap();
    let stale = format!(r#"{{"metadata":{{"name":"a","resourceVersion":"{rv}"}},"data":{{"k":"stale"}}}}"#);
    let conflict = server
        .curl(&[
            &format!("{CMS}/a"),
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &stale,
        ])
        .await
        .unwrap();
    assert_status(&conflict, 409, "Conflict");
    let mismatch = server
        .curl(&[
            &format!("{CMS}/a"),
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            r#"{"metadata":{"name":"b"}}"#,
        ])
        .await
        .unwrap();
    assert_status(&mismatch, 400, "BadRequest");
    let bad_patch = server
        .curl(&[
            &format!("{CMS}/a"),
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/json-patch+json",
            "-d",
            r#"[{"op":"remove","path":"/nope"}]"#,
        ])
        .await
        .unwrap();
    assert_status(&bad_patch, 422, "Invalid");
    let unknown_patch = server
        .curl(&[
            &format!("{CMS}/a"),
            "-X",
            "PATCH",
            "-H",
            "Content-Type: text/plain",
            "-d",
            "x",
        ])
        .await
        .unwrap();
    assert_status(&unknown_patch, 415, "UnsupportedMediaType");
    for accept in ["application/vnd.kubernetes.protobuf", "application/yaml"] {
        let refused = server
            .curl(&[&format!("{CMS}/a"), "-H", &format!("Accept: {accept}")])
            .await
            .unwrap();
        assert_status(&refused, 406, "NotAcceptable");
    }
    let either = server
        .curl(&[
            &format!("{CMS}/a"),
            "-H",
            "Accept: application/vnd.kubernetes.protobuf, application/json",
        ])
        .await
        .unwrap();
    assert_eq!(either.code, 200, "{}", either.body);
    let kept = server.curl(&[&format!("{CMS}/a")]).await.unwrap().json();
    assert_eq!(kept["data"]["k"], "v2", "refused updates wrote nothing");

    assert_status(
        &server.curl(&[&format!("{CMS}/nope")]).await.unwrap(),
        404,
        "NotFound",
    );
    assert_status(
        &server
            .curl(&["/api/v1/namespaces/default/poddisruptionbudgets"])
            .await
            .unwrap(),
        404,
        "NotFound",
    );
    // Read-only kinds (listed for kubectl's prune allowlist): reads answer as for an empty resource, writes 405.
    let pods = "/api/v1/namespaces/default/pods";
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}"#;
    let refused = server
        .curl(&[
            pods,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            pod,
        ])
        .await
        .unwrap();
    assert_status(&refused, 405, "MethodNotAllowed");
    assert!(
        refused.body.contains("pods are not federated"),
        "{}",
        refused.body
    );
    assert_status(
        &server.curl(&[&format!("{pods}/p")]).await.unwrap(),
        404,
        "NotFound",
    );
    let list = server.curl(&[pods]).await.unwrap();
    assert_eq!(list.code, 200, "{}", list.body);
    assert_eq!(list.json()["items"], serde_json::json!([]));
    assert_status(
        &server
            .curl(&["/apis/batch/v1/namespaces/default/cronjobs", "-X", "DELETE"])
            .await
            .unwrap(),
        405,
        "MethodNotAllowed",
    );
    assert_status(
        &server.curl(&["/apis/apps/v1beta9/deployments"]).await.unwrap(),
        404,
        "NotFound",
    );
    assert_status(
        &server
            .curl(&[&format!("{CMS}/a"), "-X", "POST", "-d", "{}"])
            .await
            .unwrap(),
        405,
        "MethodNotAllowed",
    );
    assert_status(
        &server
            .curl(&[&format!("{CMS}?labelSelector=a%3D(")])
            .await
            .unwrap(),
        400,
        "BadRequest",
    );
    assert_status(
        &server
            .curl(&[&format!("{CMS}?fieldSelector=spec.x%3Dy")])
            .await
            .unwrap(),
        400,
        "BadRequest",
    );
    assert_status(
        &server
            .curl(&[&format!("{CMS}?resourceVersion=abc")])
            .await
            .unwrap(),
        400,
        "BadRequest",
    );
    assert_status(
        &server
            .curl(&[&format!("{CMS}?limit=1&continue=garbage")])
            .await
            .unwrap(),
        400,
        "BadRequest",
    );
    let future = server
        .curl(&[&format!("{CMS}?resourceVersion=999999999")])
        .await
        .unwrap();
    assert_status(&future, 504, "Timeout");
    let precondition = server
        .curl(&[
            &format!("{CMS}/a"),
            "-X",
            "DELETE",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"preconditions":{"uid":"not-it"}}"#,
        ])
        .await
        .unwrap();
    assert_status(&precondition, 409, "Conflict");
    assert_eq!(count_configmaps(&server).await, 1);

    let dry = server
        .curl(&[
            &format!("{CMS}?dryRun=All"),
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"metadata":{"name":"dry"}}"#,
        ])
        .await
        .unwrap();
    assert_eq!(dry.code, 201, "{}", dry.body);
    assert_eq!(count_configmaps(&server).await, 1, "a dry run writes nothing");
}

async fn unauthenticated_requests_get_401(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    assert_status(&server.curl_as(None, &[CMS]).await.unwrap(), 401, "Unauthorized");
    assert_status(
        &server.curl_as(Some("wrong"), &[CMS]).await.unwrap(),
        401,
        "Unauthorized",
    );
    for open in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(
            server.curl_as(None, &[open]).await.unwrap().code,
            200,
            "{open} is open"
        );
    }
    let metrics = server.curl(&["/metrics"]).await.unwrap();
    assert!(
        metrics
            .body
            .contains("apiserver_request_total{verb=\"LIST\",resource=\"configmaps\",code=\"401\"}"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("apiserver_request_duration_seconds"),
        "{}",
        metrics.body
    );
}

async fn compacted_revisions_are_410_expired(backend: Backend) {
    let server = TestApiserver::start_with(backend, |config| {
        config.compaction_interval = Duration::from_millis(300);
        config.watch_cache_size = 5;
    })
    .await
    .unwrap();
    let create = |name: String| {
        let server = &server;
        async move {
            let body = format!(r#"{{"metadata":{{"name":"{name}"}}}}"#);
            let args = [
                CMS,
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
            ];
            assert_eq!(server.curl(&args).await.unwrap().code, 201);
        }
    };
    create("a".to_owned()).await;
    create("b".to_owned()).await;
    let page = server.curl(&[&format!("{CMS}?limit=1")]).await.unwrap().json();
    let old_rv = page["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let token = page["metadata"]["continue"].as_str().unwrap().to_owned();

    // Watches are served from the watch cache: past its history (5 events here) a revision is too old.
    for tick in 0..6 {
        create(format!("tick-{tick}")).await;
    }
    let watch_old = format!("{CMS}?watch=true&resourceVersion={old_rv}&timeoutSeconds=5");
    let response = server.curl(&[&watch_old]).await.unwrap();
    assert_eq!(
        response.code, 200,
        "the error comes as a watch event: {}",
        response.body
    );
    let event: serde_json::Value = serde_json::from_str(response.body.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR", "{event}");
    assert_eq!(event["object"]["code"], 410, "{event}");
    assert_eq!(event["object"]["reason"], "Expired");

    // Continue tokens read storage at their revision: once the compactor passes it, they are 410 too.
    let expired = eventually("the old revision to be compacted", || {
        let (server, token) = (&server, &token);
        async move {
            let tick = TICKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = format!(r#"{{"metadata":{{"name":"later-{tick}"}}}}"#);
            server
                .curl(&[
                    CMS,
                    "-X",
                    "POST",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    &body,
                ])
                .await
                .ok()?;
            let response = server
                .curl(&[&format!("{CMS}?limit=1&continue={token}")])
                .await
                .ok()?;
            (response.code == 410).then_some(response)
        }
    })
    .await;
    assert_status(&expired, 410, "Expired");
}

/// Names for the writes that move the store on.
static TICKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

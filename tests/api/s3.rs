//! A real S3-compatible server for the tests: moto's server (PyPI `moto[server]`, installed in
//! the test venv by `make test`), started once per test run on a free port unless
//! `ARTICULA_TEST_S3_ENDPOINT` points at one already.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

static ENDPOINT: OnceLock<String> = OnceLock::new();

pub fn endpoint() -> String {
    if let Ok(e) = std::env::var("ARTICULA_TEST_S3_ENDPOINT") {
        return e;
    }
    ENDPOINT
        .get_or_init(|| {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let venv =
                std::env::var("HOME").map(|h| format!("{h}/.cache/articula/venv/bin/moto_server")).unwrap();
            let bin = if std::path::Path::new(&venv).exists() { venv } else { "moto_server".to_owned() };
            // `make test` starts one and sets ARTICULA_TEST_S3_ENDPOINT; this fallback (a plain
            // `cargo test`) leaves the server running after the tests, like the PostgreSQL they use.
            #[allow(clippy::zombie_processes)]
            std::process::Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {bin} (run `make test-deps`): {e}"));
            let mut wait = Duration::from_millis(20);
            for _ in 0..60 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return format!("http://127.0.0.1:{port}");
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(500));
            }
            panic!("moto_server did not start");
        })
        .clone()
}

pub fn client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A new, empty bucket.
pub async fn fresh_bucket() -> String {
    let name = format!("articula-t-{}", uuid::Uuid::new_v4().simple());
    client().create_bucket().bucket(&name).send().await.unwrap();
    name
}

/// Every object in a bucket, with its bytes.
pub async fn objects(bucket: &str) -> Vec<(String, Vec<u8>)> {
    let c = client();
    let list = c.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut out = Vec::new();
    for o in list.contents() {
        let key = o.key().unwrap().to_owned();
        let body =
            c.get_object().bucket(bucket).key(&key).send().await.unwrap().body.collect().await.unwrap();
        out.push((key, body.into_bytes().to_vec()));
    }
    out
}

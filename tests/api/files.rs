//! Files: tus uploads, encryption at rest, validation and scanning, signed links, voice notes —
//! on the local store and on a real S3-compatible server.

use std::time::Duration;

use articula_protocol::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// Runs a test body on SQLite with the local store, on PostgreSQL with the local store, and on
/// SQLite with a real S3 server.
macro_rules! file_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite_fs() {
                super::$name($crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await).await
            }
            #[actix_web::test]
            async fn postgres_fs() {
                super::$name($crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await).await
            }
            #[actix_web::test]
            async fn sqlite_s3() {
                super::$name(super::spawn_s3($crate::helpers::Backend::Sqlite).await).await
            }
        }
    )+};
}

pub async fn spawn_s3(backend: Backend) -> TestApp {
    let bucket = crate::s3::fresh_bucket().await;
    spawn_app_with(backend, move |s| {
        s.object_store = "s3".into();
        s.s3_endpoint = Some(crate::s3::endpoint());
        s.s3_bucket = Some(bucket);
        s.s3_access_key = Some(articula::config::Secret::new("test"));
        s.s3_secret_key = Some(articula::config::Secret::new("test"));
    })
    .await
}

file_tests!(
    an_upload_in_pieces_becomes_a_case_file_encrypted_at_rest,
    creation_with_upload_and_downloads_by_range,
    an_interrupted_upload_resumes_where_it_stopped,
    checksums_offsets_and_protocol_errors,
    bad_files_are_refused_and_nothing_is_stored,
    signed_links_work_for_their_user_only_and_not_after_revocation,
    every_upload_is_scanned_by_clamd_before_it_is_stored,
    one_request_writes_an_upload_at_a_time,
    abandoned_uploads_expire_and_terminated_ones_are_gone,
    a_new_design_upload_voids_the_approval,
    voice_notes_get_their_transcript,
    a_large_incompressible_file_is_stored_in_parts_and_read_back_by_range,
);

crate::both_backends!(
    a_rotated_master_key_still_unwraps_the_organisation_keys_of_the_old_one,
    a_voice_note_without_a_transcription_service_is_kept_and_waits,
    file_names_that_could_disguise_a_file_are_refused_at_creation,
    a_stored_object_changed_on_disk_is_not_served,
);

/// A new server on the same database backend and object store as `app` (same bucket), with
/// `tweak` applied on top.
async fn respawn(app: &TestApp, tweak: impl FnOnce(&mut articula::config::Settings)) -> TestApp {
    let from = app.settings.clone();
    spawn_app_with(app.backend, move |s| {
        s.object_store = from.object_store;
        s.s3_endpoint = from.s3_endpoint;
        s.s3_bucket = from.s3_bucket;
        s.s3_access_key = from.s3_access_key;
        s.s3_secret_key = from.s3_secret_key;
        tweak(s);
    })
    .await
}

/// A binary STL of `n` triangles (a plausible mesh, compressible like real scans).
pub fn stl(n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(84 + 50 * n as usize);
    let mut header = b"Articula test mesh".to_vec();
    header.resize(80, b' ');
    out.extend_from_slice(&header);
    out.extend_from_slice(&n.to_le_bytes());
    for i in 0..n {
        let f = i as f32 * 0.01;
        for v in [0.0f32, 0.0, 1.0, f, f + 1.0, 2.0, f + 0.5, f, 3.0, f + 1.0, f, 4.0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
    }
    out
}

pub fn png() -> Vec<u8> {
    hex::decode("89504e470d0a1a0a0000000d4948445200000004000000040802000000269309290000001149444154789c6338b1651a1c3110c7010060c12121723144db0000000049454e44ae426082").unwrap()
}

/// A short mono 16-bit WAV.
pub fn wav(samples: usize) -> Vec<u8> {
    let data_len = (samples * 2) as u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        w.extend_from_slice(&(((i % 100) as i16 - 50) * 300).to_le_bytes());
    }
    w
}

fn metadata(case: CaseId, name: &str, kind: Option<&str>) -> String {
    let mut m = format!("case_id {},filename {}", B64.encode(case.to_string()), B64.encode(name));
    if let Some(k) = kind {
        m.push_str(&format!(",kind {}", B64.encode(k)));
    }
    m
}

impl TestApp {
    pub async fn tus_create(
        &self,
        s: &Session,
        case: CaseId,
        name: &str,
        kind: Option<&str>,
        len: u64,
    ) -> reqwest::Response {
        self.http
            .post(self.path("/api/v1/uploads/"))
            .bearer_auth(&s.access)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", len.to_string())
            .header("Upload-Metadata", metadata(case, name, kind))
            .send()
            .await
            .unwrap()
    }

    pub async fn tus_patch(
        &self,
        s: &Session,
        location: &str,
        offset: u64,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.http
            .patch(self.path(location))
            .bearer_auth(&s.access)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn tus_offset(&self, s: &Session, location: &str) -> reqwest::Response {
        self.http
            .head(self.path(location))
            .bearer_auth(&s.access)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap()
    }

    /// Uploads `data` in `pieces` PATCH requests; returns the file id.
    pub async fn upload(
        &self,
        s: &Session,
        case: CaseId,
        name: &str,
        kind: Option<&str>,
        data: &[u8],
        pieces: usize,
    ) -> FileId {
        let res = self.tus_create(s, case, name, kind, data.len() as u64).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap_or_default());
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let step = data.len().div_ceil(pieces);
        let mut offset = 0;
        let mut file = None;
        for chunk in data.chunks(step) {
            let res = self.tus_patch(s, &location, offset as u64, chunk.to_vec()).await;
            assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap_or_default());
            offset += chunk.len();
            assert_eq!(res.headers()["upload-offset"].to_str().unwrap(), offset.to_string());
            file = res.headers().get("articula-file-id").map(|v| v.to_str().unwrap().parse().unwrap());
        }
        file.expect("the last PATCH names the file")
    }

    pub async fn link(&self, s: &Session, file: FileId) -> String {
        let res = self.post(&format!("/api/v1/files/{file}/link"), s, json!({})).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_owned()
    }

    pub async fn download(&self, s: &Session, url: &str, range: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(url).bearer_auth(&s.access);
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        req.send().await.unwrap()
    }

    /// Every stored object's raw bytes (local store or the test's bucket).
    pub async fn raw_objects(&self) -> Vec<Vec<u8>> {
        match &self.settings.s3_bucket {
            Some(b) if self.settings.object_store == "s3" => {
                crate::s3::objects(b).await.into_iter().map(|(_, v)| v).collect()
            }
            _ => {
                let mut out = Vec::new();
                let mut stack = vec![self.dir.path().join("objects")];
                while let Some(d) = stack.pop() {
                    for e in std::fs::read_dir(d).unwrap() {
                        let p = e.unwrap().path();
                        if p.is_dir() { stack.push(p) } else { out.push(std::fs::read(p).unwrap()) }
                    }
                }
                out
            }
        }
    }
}

async fn an_upload_in_pieces_becomes_a_case_file_encrypted_at_rest(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let head = doctor.subscribe(case, 0).await;
    // 2.5 MB: several 1 MiB segments plus a tail; uploaded by the lab in 4 requests.
    let data = stl(50_000);
    let file = app.upload(&w.tech, case, "crown_11.stl", Some("design"), &data, 4).await;

    // The doctor sees it arrive live, as a case event.
    let e = doctor.event(case, head + 1).await;
    let EventData::FileAdded { file_id, name, size, content_type, sha256, file_kind, .. } = e.data else {
        panic!("{e:?}")
    };
    let want_sha = hex::encode(Sha256::digest(&data));
    assert_eq!(
        (file_id, name.as_str(), size, content_type.as_str(), sha256.as_str(), file_kind),
        (file, "crown_11.stl", data.len() as u64, "model/stl", want_sha.as_str(), FileKind::Design)
    );
    assert_eq!(e.actor, w.tech.user_id);
    let list = app.get_json(&format!("/api/v1/cases/{case}/files"), &w.doctor).await;
    assert_eq!(list[0]["sha256"], want_sha);
    assert_eq!(list[0]["size"], data.len());

    // Downloaded back, byte for byte.
    let url = app.link(&w.doctor, file).await;
    let res = app.download(&w.doctor, &url, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "model/stl");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"crown_11.stl\"")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM downloads WHERE file_id = '{file}'")).await, 1);

    // At rest: no plaintext in storage, compressed smaller than the file, nothing naming it.
    let objects = app.raw_objects().await;
    assert_eq!(objects.len(), 1);
    let raw = &objects[0];
    for probe in [&data[84..84 + 48], &data[data.len() - 48..], &data[..18]] {
        assert!(!raw.windows(probe.len()).any(|w| w == probe), "stored bytes contain plaintext");
    }
    assert!((raw.len() as f64) < data.len() as f64 * 0.8, "{} stored for {}", raw.len(), data.len());
    let stored = app.count(&format!("SELECT stored_size FROM files WHERE id = '{file}'")).await;
    assert_eq!(stored as usize, raw.len());
    let key: String = articula::with_db!(&app.state.db, pool => {
        use sqlx::Row;
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT object_key FROM files WHERE id = '{file}'"))).fetch_one(pool).await.unwrap().get::<String, _>(0)
    });
    assert!(!key.contains("crown") && !key.contains(&case.to_string()) && !key.contains(&file.to_string()));
}

async fn creation_with_upload_and_downloads_by_range(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    // creation-with-upload: the whole photo in the POST.
    let photo = png();
    let res = app
        .http
        .post(app.path("/api/v1/uploads/"))
        .bearer_auth(&w.doctor.access)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", photo.len().to_string())
        .header("Upload-Metadata", metadata(case, "shade A2.png", None))
        .header("Content-Type", "application/offset+octet-stream")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["upload-offset"], photo.len().to_string().as_str());
    assert!(res.headers().contains_key("upload-expires"));
    let files = app.get_json(&format!("/api/v1/cases/{case}/files"), &w.tech).await;
    assert_eq!(
        (files[0]["kind"].as_str(), files[0]["content_type"].as_str()),
        (Some("photo"), Some("image/png"))
    );

    // Ranges, across segment boundaries too.
    let data = stl(60_000);
    let file = app.upload(&w.doctor, case, "scan.stl", Some("scan"), &data, 1).await;
    let url = app.link(&w.tech, file).await;
    let mib = 1024 * 1024;
    for (range, lo, hi) in [
        ("bytes=0-99", 0, 99),
        (&*format!("bytes={}-{}", mib - 10, mib + 10), mib - 10, mib + 10),
        ("bytes=-100", data.len() - 100, data.len() - 1),
        (&*format!("bytes={}-", data.len() - 5), data.len() - 5, data.len() - 1),
    ] {
        let res = app.download(&w.tech, &url, Some(range)).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            res.headers()["content-range"].to_str().unwrap(),
            format!("bytes {lo}-{hi}/{}", data.len())
        );
        assert_eq!(res.bytes().await.unwrap().as_ref(), &data[lo..=hi], "{range}");
    }
    let res = app.download(&w.tech, &url, Some(&format!("bytes={}-", data.len()))).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // A photo may be shown inline; a scan never.
    let photo_id: FileId = files[0]["id"].as_str().unwrap().parse().unwrap();
    let inline = format!("{}&inline=1", app.link(&w.tech, photo_id).await);
    let res = app.download(&w.tech, &inline, None).await;
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("inline"));
    let res = app.download(&w.tech, &format!("{url}&inline=1"), None).await;
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
}

async fn an_interrupted_upload_resumes_where_it_stopped(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let data = stl(70_000); // 3.5 MB
    let res = app.tus_create(&w.doctor, case, "scan.stl", Some("scan"), data.len() as u64).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();

    // The phone loses its network after 1.6 MB of a request meant to carry everything: the
    // connection just goes silent (nothing closes it). A raw TLS connection plays the phone.
    let sent = 1_600_000;
    let connector = tokio_rustls::TlsConnector::from(app.tls_config());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut phone = connector.connect(name, tcp).await.unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let head = format!(
            "PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\n\
             Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
            w.doctor.access,
            data.len()
        );
        phone.write_all(head.as_bytes()).await.unwrap();
        phone.write_all(&data[..sent]).await.unwrap();
        phone.flush().await.unwrap();
    }
    // The server keeps what arrived once the request has been silent for its idle limit (2 s in
    // tests), and a HEAD tells the client where to resume.
    let offset: u64 = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let res = app.tus_offset(&w.doctor, &location).await;
            if res.status() == StatusCode::OK {
                let offset: u64 = res.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
                if offset > 0 {
                    return offset;
                }
            } else {
                assert_eq!(
                    res.status(),
                    StatusCode::LOCKED,
                    "HEAD while the silent request holds the upload"
                );
            }
        }
    })
    .await
    .expect("the bytes received before the silence were kept");
    drop(phone);
    assert!(offset > 0 && offset <= sent as u64, "offset {offset}");
    let res = app.tus_patch(&w.doctor, &location, offset, data[offset as usize..].to_vec()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let files = app.get_json(&format!("/api/v1/cases/{case}/files"), &w.doctor).await;
    assert_eq!(files[0]["sha256"], hex::encode(Sha256::digest(&data)));
    let url = app.link(&w.doctor, files[0]["id"].as_str().unwrap().parse().unwrap()).await;
    assert_eq!(app.download(&w.doctor, &url, None).await.bytes().await.unwrap().as_ref(), data.as_slice());
}

async fn checksums_offsets_and_protocol_errors(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let data = stl(1_000);
    let res = app.tus_create(&w.doctor, case, "scan.stl", None, data.len() as u64).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let part = data[..20_000].to_vec();
    let patch = |sum: &str| {
        app.http
            .patch(app.path(&location))
            .bearer_auth(&w.doctor.access)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Checksum", sum.to_owned())
            .body(part.clone())
            .send()
    };
    let wrong = format!("sha256 {}", B64.encode(Sha256::digest(b"something else")));
    let res = patch(&wrong).await.unwrap();
    assert_eq!(res.status().as_u16(), 460);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "checksum_mismatch");
    assert_eq!(
        app.tus_offset(&w.doctor, &location).await.headers()["upload-offset"],
        "0",
        "the chunk was discarded"
    );
    let res = patch("md5 xxxx").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let right = format!("sha256 {}", B64.encode(Sha256::digest(&part)));
    assert_eq!(patch(&right).await.unwrap().status(), StatusCode::NO_CONTENT);
    // Wrong offset, missing protocol header, wrong content type, someone else's upload.
    let res = app.tus_patch(&w.doctor, &location, 5, data[5..10].to_vec()).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "offset_mismatch");
    let res = app
        .http
        .patch(app.path(&location))
        .bearer_auth(&w.doctor.access)
        .header("Upload-Offset", "20000")
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let res = app
        .http
        .patch(app.path(&location))
        .bearer_auth(&w.doctor.access)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "20000")
        .header("Content-Type", "application/json")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        app.tus_patch(&w.tech, &location, 20_000, data[20_000..].to_vec()).await.status(),
        StatusCode::NOT_FOUND
    );
    // More bytes than announced.
    let mut too_much = data[20_000..].to_vec();
    too_much.extend_from_slice(b"extra");
    assert_eq!(
        app.tus_patch(&w.doctor, &location, 20_000, too_much).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(app.tus_offset(&w.doctor, &location).await.headers()["upload-offset"], "20000");
    // OPTIONS tells the capabilities.
    let res = app.http.request(reqwest::Method::OPTIONS, app.path("/api/v1/uploads/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["tus-version"], "1.0.0");
    let ext = res.headers()["tus-extension"].to_str().unwrap();
    for e in ["creation", "creation-with-upload", "expiration", "checksum", "termination"] {
        assert!(ext.split(',').any(|x| x == e), "{ext}");
    }
    assert!(
        res.headers()["tus-max-size"].to_str().unwrap().parse::<u64>().unwrap() >= 2 * 1024 * 1024 * 1024
    );
}

async fn bad_files_are_refused_and_nothing_is_stored(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let foreign = app.submitted_case(&w.foreign_doctor, "Theirs", w.other_lab).await;
    let try_upload = |name: &'static str, kind: Option<&'static str>, data: Vec<u8>| {
        let app = &app;
        let s = w.doctor.clone();
        async move {
            let res = app.tus_create(&s, case, name, kind, data.len() as u64).await;
            if res.status() != StatusCode::CREATED {
                return (
                    res.status(),
                    res.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned(),
                );
            }
            let location = res.headers()["location"].to_str().unwrap().to_owned();
            let res = app.tus_patch(&s, &location, 0, data).await;
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(json!({"error": ""}));
            (status, body["error"].as_str().unwrap_or("").to_owned())
        }
    };
    // A renamed executable posing as a scan, refused at its first bytes.
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.resize(84 + 50 * 10, 0);
    assert_eq!(
        try_upload("scan.stl", Some("scan"), elf).await,
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_file_type".into())
    );
    // A truncated STL (its triangle count says otherwise).
    let mut short = stl(100);
    short.truncate(short.len() - 50);
    assert_eq!(try_upload("scan.stl", None, short).await.1, "invalid_file_type");
    // The EICAR test file, always.
    let eicar = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*".to_vec();
    assert_eq!(try_upload("eicar.pdf", None, eicar).await.1, "malware_detected");
    // A photo is not a scan.
    assert_eq!(try_upload("photo.png", Some("scan"), png()).await.1, "invalid_file_type");
    // Zero bytes, too large, a path for a name, a foreign case, no case.
    assert_eq!(try_upload("empty.stl", None, Vec::new()).await.1, "invalid_file_type");
    let res = app.tus_create(&w.doctor, case, "big.stl", None, 100 * 1024 * 1024 * 1024).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    for name in ["../../etc/passwd", "dir/scan.stl", "..", "a\\b.stl"] {
        let res = app.tus_create(&w.doctor, case, name, None, 1000).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
    }
    assert_eq!(
        app.tus_create(&w.doctor, foreign, "scan.stl", None, 1000).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.tus_create(&w.owner, case, "scan.stl", None, 1000).await.status(), StatusCode::NOT_FOUND);
    let res = app
        .http
        .post(app.path("/api/v1/uploads/"))
        .bearer_auth(&w.doctor.access)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing stored, nothing listed, no event.
    assert!(app.raw_objects().await.is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM files").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE kind = 'file_added'").await, 0);
    let staged = std::fs::read_dir(app.dir.path().join("uploads")).unwrap().count();
    assert_eq!(staged, 0, "refused uploads leave nothing staged");
}

async fn signed_links_work_for_their_user_only_and_not_after_revocation(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let file = app.upload(&w.doctor, case, "scan.stl", None, &stl(500), 1).await;
    let url = app.link(&w.tech, file).await;
    assert_eq!(app.download(&w.tech, &url, None).await.status(), StatusCode::OK);
    // Another user who can see the case still cannot use the technician's link.
    assert_eq!(app.download(&w.admin, &url, None).await.status(), StatusCode::FORBIDDEN);
    // Nobody without access gets a link.
    assert_eq!(
        app.post(&format!("/api/v1/files/{file}/link"), &w.foreign_tech, json!({})).await.status(),
        StatusCode::NOT_FOUND
    );
    // A forged or altered link fails; so does an expired one.
    let forged = url.replace("sig=", "sig=AAAA");
    assert_eq!(app.download(&w.tech, &forged, None).await.status(), StatusCode::FORBIDDEN);
    let key = app.state.files.keyring.link_key();
    let session: uuid::Uuid = w.tech.session_id.parse().unwrap();
    let past = articula_actors::clock::now_ms() - 1;
    let old = format!(
        "{}/api/v1/files/{file}/content?{}",
        app.url,
        articula::uploads::links::query(&key, file, w.tech.user_id, session, past)
    );
    let res = app.download(&w.tech, &old, None).await;
    assert_eq!(res.status(), StatusCode::GONE);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "link_expired");
    // Revoked: an unexpired link stops working at once.
    let fresh = app.link(&w.tech, file).await;
    let res = app.post("/api/v1/auth/logout-all", &w.tech, json!({})).await;
    assert!(res.status().is_success());
    assert_eq!(app.download(&w.tech, &fresh, None).await.status(), StatusCode::UNAUTHORIZED);
    let again = app.login("tech@t.test", "lab").await;
    assert_eq!(
        app.download(&again, &fresh, None).await.status(),
        StatusCode::UNAUTHORIZED,
        "the link's session ended"
    );
    // Losing the case (the clinic routes it to another lab) ends an unexpired link too, answered
    // like a file that does not exist.
    let url = app.link(&again, file).await;
    let res = app.patch(&format!("/api/v1/cases/{case}"), &w.admin, json!({"lab_id": w.other_lab})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.download(&again, &url, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "not_found");
    // The doctor's own link still works.
    let url = app.link(&w.doctor, file).await;
    assert_eq!(app.download(&w.doctor, &url, None).await.status(), StatusCode::OK);
}

async fn one_request_writes_an_upload_at_a_time(app: TestApp) {
    // The slow request must not be ended by the idle limit while the test holds it open.
    let app = respawn(&app, |s| s.upload_idle_secs = 120).await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let data = stl(20_000);
    let res = app.tus_create(&w.doctor, case, "scan.stl", None, data.len() as u64).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    // A slow request: its body trickles in through a channel we control.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<bytes::Bytes, std::io::Error>>();
    tx.send(Ok(bytes::Bytes::copy_from_slice(&data[..1000]))).unwrap();
    let rx = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let req = app
        .http
        .patch(app.path(&location))
        .bearer_auth(&w.doctor.access)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Content-Length", "5000")
        .body(reqwest::Body::wrap_stream(rx))
        .send();
    let slow = actix_rt::spawn(req);
    // Wait until the slow request holds the upload (a HEAD is then refused too)…
    loop {
        match app.tus_offset(&w.doctor, &location).await.status() {
            StatusCode::LOCKED => break,
            StatusCode::OK => tokio::task::yield_now().await,
            other => panic!("HEAD answered {other}"),
        }
    }
    // …then a second writer is refused, not interleaved.
    let second = app.tus_patch(&w.doctor, &location, 0, data[..500].to_vec()).await;
    assert_eq!(second.status(), StatusCode::LOCKED);
    assert_eq!(second.json::<Value>().await.unwrap()["error"], "upload_locked");
    tx.send(Ok(bytes::Bytes::copy_from_slice(&data[1000..5000]))).unwrap();
    drop(tx);
    let res = slow.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["upload-offset"], "5000");
}

async fn abandoned_uploads_expire_and_terminated_ones_are_gone(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let data = stl(30_000);
    let mut locations = Vec::new();
    for _ in 0..2 {
        let res = app.tus_create(&w.doctor, case, "scan.stl", None, data.len() as u64).await;
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(
            app.tus_patch(&w.doctor, &location, 0, data[..1_200_000].to_vec()).await.status(),
            StatusCode::NO_CONTENT
        );
        locations.push(location);
    }
    let staged = || std::fs::read_dir(app.dir.path().join("uploads")).unwrap().count();
    assert!(staged() > 0);
    // Termination.
    let res = app
        .http
        .delete(app.path(&locations[0]))
        .bearer_auth(&w.doctor.access)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.tus_offset(&w.doctor, &locations[0]).await.status(), StatusCode::NOT_FOUND);
    // Expiry: time passes (in the database), the sweeper deletes the bytes.
    app.sql("UPDATE uploads SET expires_at = 1").await;
    assert_eq!(app.state.files.sweep_expired(&app.state.db).await.unwrap(), 1);
    assert_eq!(staged(), 0);
    assert_eq!(app.tus_offset(&w.doctor, &locations[1]).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.tus_patch(&w.doctor, &locations[1], 1_200_000, data[1_200_000..].to_vec()).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn a_new_design_upload_voids_the_approval(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    tech.call(ClientBody::SetStatus(SetStatus { case_id: case, status: CaseStatus::Received, reason: None }))
        .await
        .unwrap();
    let v1 = stl(300);
    app.upload(&w.tech, case, "design_v1.stl", Some("design"), &v1, 1).await;
    let sha = hex::encode(Sha256::digest(&v1));
    tech.call(ClientBody::RequestApproval(RequestApproval {
        case_id: case,
        file_sha256: sha.clone(),
        comment: None,
    }))
    .await
    .unwrap();
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await;
    assert_eq!(
        (approvals[0]["status"].as_str(), approvals[0]["file_sha256"].as_str()),
        (Some("pending"), Some(sha.as_str()))
    );
    app.upload(&w.tech, case, "design_v2.stl", Some("design"), &stl(301), 1).await;
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await;
    assert_eq!(approvals[0]["status"], "voided");
}

async fn voice_notes_get_their_transcript(app: TestApp) {
    // A local server speaking the OpenAI transcription API: fails once, then answers.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let srv = actix_web::HttpServer::new(move || {
        let seen = seen.clone();
        actix_web::App::new().route(
            "/v1/audio/transcriptions",
            actix_web::web::post().to(move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    let ct = req
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let text = String::from_utf8_lossy(&body).to_string();
                    if n == 0 {
                        return actix_web::HttpResponse::ServiceUnavailable().finish();
                    }
                    let ok = ct.starts_with("multipart/form-data")
                        && auth == "Bearer test-key"
                        && text.contains("name=\"model\"")
                        && text.contains("whisper-1")
                        && body.windows(4).any(|w| w == b"RIFF");
                    if !ok {
                        return actix_web::HttpResponse::BadRequest().finish();
                    }
                    actix_web::HttpResponse::Ok()
                        .json(json!({"text": "Please make the contact on 12 a bit tighter."}))
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = srv.addrs()[0].port();
    actix_rt::spawn(srv.run());
    let app = respawn(&app, move |s| {
        s.transcription_url = Some(format!("http://127.0.0.1:{port}/v1"));
        s.transcription_api_key = Some(articula::config::Secret::new("test-key"));
    })
    .await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    let head = tech.subscribe(case, 0).await;
    let file = app.upload(&w.doctor, case, "note.wav", Some("voice_note"), &wav(16_000), 1).await;
    assert!(matches!(
        tech.event(case, head + 1).await.data,
        EventData::FileAdded { file_kind: FileKind::VoiceNote, .. }
    ));
    // The first attempt fails; the retry brings the transcript as a case event.
    let e = tokio::time::timeout(Duration::from_secs(30), tech.event(case, head + 2))
        .await
        .expect("no transcript");
    match e.data {
        EventData::VoiceTranscribed { file_id, text } => {
            assert_eq!(file_id, file);
            assert_eq!(text, "Please make the contact on 12 a bit tighter.");
        }
        other => panic!("{other:?}"),
    }
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

async fn every_upload_is_scanned_by_clamd_before_it_is_stored(app: TestApp) {
    // A real clamd whose test database knows one "infected" photo (by its SHA-256).
    let mut infected = png();
    infected.splice(33..33, {
        // An extra ancillary chunk makes this PNG differ from the clean one.
        let mut c = vec![0, 0, 0, 4];
        c.extend_from_slice(b"tEXtabcd");
        let crc = crc32(&c[4..]);
        c.extend_from_slice(&crc.to_be_bytes());
        c
    });
    let sig = infected.clone();
    let clamd = tokio::task::spawn_blocking(move || {
        crate::clamd::Clamd::builder().signature(&sig, "Articula-Test-Photo").start()
    })
    .await
    .unwrap();
    let addr = clamd.addr();
    let app = respawn(&app, move |s| s.clamd = Some(addr.to_string())).await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    // The clean photo and a scan pass the scanner.
    app.upload(&w.doctor, case, "clean.png", None, &png(), 1).await;
    app.upload(&w.doctor, case, "scan.stl", None, &stl(2_000), 2).await;
    // The infected one is refused with clamd's verdict, and nothing of it is stored.
    let res = app.tus_create(&w.doctor, case, "shade.png", None, infected.len() as u64).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let res = app.tus_patch(&w.doctor, &location, 0, infected).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "malware_detected");
    assert!(body["message"].as_str().unwrap().contains("Articula-Test-Photo"), "{body}");
    assert_eq!(
        app.get_json(&format!("/api/v1/cases/{case}/files"), &w.doctor).await.as_array().unwrap().len(),
        2
    );
    assert_eq!(app.raw_objects().await.len(), 2);
    // With clamd gone, uploads are refused (fail closed), never stored unscanned.
    tokio::task::spawn_blocking(move || drop(clamd)).await.unwrap();
    let res = app.tus_create(&w.doctor, case, "late.png", None, png().len() as u64).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let res = app.tus_patch(&w.doctor, &location, 0, png()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.raw_objects().await.len(), 2);
}

/// CRC-32 (IEEE), for building PNG chunks in tests.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A WAV of `samples` noisy 16-bit samples: audio is not compressed, so it is stored at its size.
fn noisy_wav(samples: usize) -> Vec<u8> {
    let mut w = wav(samples);
    let mut x: u32 = 0x9E37_79B9;
    for b in &mut w[44..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    w
}

async fn a_large_incompressible_file_is_stored_in_parts_and_read_back_by_range(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    // 20 MiB: more than two of S3's 8 MiB parts.
    let data = noisy_wav(10 * 1024 * 1024);
    let file = app.upload(&w.doctor, case, "dictation.wav", None, &data, 3).await;
    let objects = app.raw_objects().await;
    assert_eq!(objects.len(), 1);
    assert!(objects[0].len() >= data.len(), "{} stored for {}", objects[0].len(), data.len());
    let probe = &data[15 << 20..(15 << 20) + 64];
    assert!(!objects[0].windows(64).any(|w| w == probe), "stored bytes contain plaintext");
    if let Some(bucket) = app.settings.s3_bucket.as_ref().filter(|_| app.settings.object_store == "s3") {
        // A multipart object's ETag is the digest of its parts' digests, then "-<parts>".
        let key = crate::s3::objects(bucket).await.remove(0).0;
        let head = crate::s3::client().head_object().bucket(bucket).key(&key).send().await.unwrap();
        let etag = head.e_tag().unwrap().trim_matches('"').to_owned();
        assert!(etag.ends_with("-3"), "not stored in three parts: {etag}");
    }
    // Whole, and a range across segment and part boundaries.
    let url = app.link(&w.tech, file).await;
    let res = app.download(&w.tech, &url, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "audio/wav");
    let body = res.bytes().await.unwrap();
    assert!(body.as_ref() == data.as_slice(), "the download differs from the upload");
    let (from, to) = ((8 << 20) - 1000, (16 << 20) + 5000);
    let res = app.download(&w.tech, &url, Some(&format!("bytes={from}-{to}"))).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["content-range"], format!("bytes {from}-{to}/{}", data.len()));
    assert!(res.bytes().await.unwrap().as_ref() == &data[from..=to]);
}

async fn a_rotated_master_key_still_unwraps_the_organisation_keys_of_the_old_one(app: TestApp) {
    use articula::config::{Secret, Settings};
    use articula::objects::crypto::Key;
    use articula::objects::keys::{KeyError, Keyring};
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let file = app.upload(&w.doctor, case, "scan.stl", None, &stl(2_000), 1).await;
    let key_id: String = articula::with_db!(&app.state.db, pool => {
        use sqlx::Row;
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT key_id FROM files WHERE id = '{file}'")))
            .fetch_one(pool).await.unwrap().get::<String, _>(0)
    });
    let sealed_with = app.state.files.keyring.key_by_id(&key_id).await.unwrap();
    // The master key the server made at first start, then a new one with the old one listed.
    let old = std::fs::read_to_string(app.dir.path().join("keys").join("master.key")).unwrap();
    let rotated = Settings {
        master_key: Some(Secret::new(Key::generate().to_base64())),
        master_keys_old: Some(Secret::new(old.trim())),
        ..app.settings.clone()
    };
    let keyring = Keyring::load(&rotated, app.state.db.clone()).unwrap();
    let opened = keyring.key_by_id(&key_id).await.unwrap();
    assert_eq!(opened.to_base64(), sealed_with.to_base64());
    // The organisation keeps its key: new files of the clinic are sealed under the same one.
    let (current, _) = keyring.org_key(w.clinic).await.unwrap();
    assert_eq!(current, key_id);
    // Without the old master key listed, nothing opens (and nothing is guessed).
    let forgotten = Settings { master_keys_old: None, ..rotated };
    let keyring = Keyring::load(&forgotten, app.state.db.clone()).unwrap();
    assert!(matches!(keyring.key_by_id(&key_id).await, Err(KeyError::Unavailable(_))));
}

async fn a_voice_note_without_a_transcription_service_is_kept_and_waits(app: TestApp) {
    assert!(app.settings.transcription_url.is_none());
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    let head = tech.subscribe(case, 0).await;
    let audio = wav(16_000);
    let file = app.upload(&w.doctor, case, "note.wav", Some("voice_note"), &audio, 1).await;
    // The upload is not held back: the note is a case file at once, playable by the lab.
    assert!(matches!(
        tech.event(case, head + 1).await.data,
        EventData::FileAdded { file_kind: FileKind::VoiceNote, .. }
    ));
    let url = app.link(&w.tech, file).await;
    let res = app.download(&w.tech, &url, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), audio.as_slice());
    // It waits for a service to be configured, as a pending job; nothing else was added to the case.
    let pending = app
        .count(&format!(
            "SELECT COUNT(*) FROM transcriptions WHERE file_id = '{file}' AND status = 'pending'"
        ))
        .await;
    assert_eq!(pending, 1);
    let events = app.get_json(&format!("/api/v1/cases/{case}/events?after={head}"), &w.doctor).await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
}

async fn file_names_that_could_disguise_a_file_are_refused_at_creation(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let data = stl(200);
    // Shown as `scanexe.stl`, invisibly different names, controls, paths.
    for name in [
        "scan\u{202E}lts.exe",
        "\u{2067}scan.stl",
        "scan\u{200F}.stl",
        "scan\u{200B}.stl",
        "scan\u{FEFF}.stl",
        "scan\u{00AD}.stl",
        "scan\u{0}.stl",
        "scan\n.stl",
        "scan\u{1B}[8m.stl",
        "scan\u{85}.stl",
        "../scan.stl",
        "dir/../scan.stl",
        "a\\scan.stl",
        ".",
        "..",
        " ",
    ] {
        // A raw tus creation, with the first bytes in the same request (creation-with-upload).
        let res = app
            .http
            .post(app.path("/api/v1/uploads/"))
            .bearer_auth(&w.doctor.access)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", data.len().to_string())
            .header("Upload-Metadata", metadata(case, name, None))
            .header("Content-Type", "application/offset+octet-stream")
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
        assert_eq!(res.headers()["tus-resumable"], "1.0.0");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "validation_failed", "{name:?}: {body}");
        assert!(body["message"].as_str().unwrap().starts_with("filename "), "{name:?}: {body}");
    }
    // Nothing created: no upload, nothing staged, no file, no event.
    assert_eq!(app.count("SELECT COUNT(*) FROM uploads").await, 0);
    assert_eq!(std::fs::read_dir(app.dir.path().join("uploads")).unwrap().count(), 0);
    assert!(app.raw_objects().await.is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM files").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE kind = 'file_added'").await, 0);

    // An ordinary name (spaces, accents, brackets) is kept as it was sent, and downloads as it.
    let name = "Kronë 11 (v2) – Müller.stl";
    let file = app.upload(&w.doctor, case, name, None, &data, 1).await;
    let list = app.get_json(&format!("/api/v1/cases/{case}/files"), &w.doctor).await;
    assert_eq!(list[0]["name"], name);
    let res = app.download(&w.doctor, &app.link(&w.doctor, file).await, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.ends_with(&format!("filename*=UTF-8''{encoded}")), "{disposition}");
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
}

/// The one stored object on the local store.
fn object_path(app: &TestApp) -> std::path::PathBuf {
    let mut found = Vec::new();
    let mut stack = vec![app.dir.path().join("objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { found.push(p) }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// Flips one bit of the byte at `at` of a file.
fn flip(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

async fn a_stored_object_changed_on_disk_is_not_served(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;

    // One segment: a byte of its ciphertext changed, the download is refused before it starts,
    // with a clear error and none of the file's bytes.
    let small = noisy_wav(20_000);
    let file = app.upload(&w.doctor, case, "dictation.wav", None, &small, 1).await;
    let path = object_path(&app);
    let url = app.link(&w.doctor, file).await;
    assert_eq!(app.download(&w.doctor, &url, None).await.bytes().await.unwrap().as_ref(), small.as_slice());
    let stored = std::fs::metadata(&path).unwrap().len() as usize;
    flip(&path, stored / 2);
    for range in [None, Some("bytes=100-199")] {
        let res = app.download(&w.doctor, &url, range).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{range:?}");
        assert_eq!(res.headers()["content-type"], "application/json");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "internal");
        assert!(body["message"].as_str().unwrap().contains("integrity check"), "{body}");
    }
    // The length prefix or the flags byte changed: refused the same way.
    flip(&path, stored / 2);
    flip(&path, 4);
    let res = app.download(&w.doctor, &url, None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    flip(&path, 4);
    flip(&path, 0);
    assert_eq!(app.download(&w.doctor, &url, None).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    flip(&path, 0);
    assert_eq!(app.download(&w.doctor, &url, None).await.bytes().await.unwrap().as_ref(), small.as_slice());
    std::fs::remove_file(&path).unwrap();

    // Six segments (more than one read's worth), the last one changed: what is intact still
    // reads by range, the damaged part is refused, and a whole download, whose start was
    // intact, breaks off rather than deliver altered bytes.
    let large = noisy_wav(3_000_000);
    let file = app.upload(&w.doctor, case, "long dictation.wav", None, &large, 1).await;
    let path = object_path(&app);
    let stored = std::fs::metadata(&path).unwrap().len() as usize;
    flip(&path, stored - 100);
    let url = app.link(&w.doctor, file).await;
    let res = app.download(&w.doctor, &url, Some("bytes=0-999")).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &large[..1000]);
    let tail = format!("bytes={}-{}", large.len() - 1000, large.len() - 1);
    let res = app.download(&w.doctor, &url, Some(&tail)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "internal");
    let res = app.download(&w.doctor, &url, None).await;
    assert_eq!(res.status(), StatusCode::OK, "the first segments were intact");
    let body = res.bytes().await;
    assert!(body.is_err(), "a body with an altered segment was delivered whole");
}

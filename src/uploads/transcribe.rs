//! Voice-note transcription through an OpenAI-compatible `/audio/transcriptions` endpoint
//! (OpenAI Whisper, or a self-hosted server speaking the same API). Jobs are durable rows; a
//! failing service is retried later with backoff and never blocks an upload.

use std::sync::Arc;
use std::time::Duration;

use articula_actors::clock::now_ms;
use articula_actors::{CaseCommand, Command, Principal};
use futures_util::TryStreamExt;

use crate::config::Settings;
use crate::objects::reader::SealedFile;
use crate::state::AppState;

/// Largest voice note sent for transcription (the OpenAI API's limit).
const MAX_BYTES: u64 = 25 * 1024 * 1024;
/// Attempts before a job is given up.
const MAX_ATTEMPTS: i64 = 20;

/// The transcription service.
#[derive(Clone)]
pub struct Transcriber {
    url: String,
    api_key: Option<String>,
    model: String,
    http: reqwest::Client,
}

impl Transcriber {
    /// From the settings, when `ARTICULA_TRANSCRIPTION_URL` is set.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let base = settings.transcription_url.as_deref()?.trim_end_matches('/');
        Some(Self {
            url: format!("{base}/audio/transcriptions"),
            api_key: settings.transcription_api_key.as_ref().map(|k| k.expose().to_owned()),
            model: settings.transcription_model.clone(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().ok()?,
        })
    }

    async fn transcribe(&self, name: &str, mime: &str, audio: Vec<u8>) -> Result<String, String> {
        let part = reqwest::multipart::Part::bytes(audio)
            .file_name(name.to_owned())
            .mime_str(mime)
            .map_err(|e| e.to_string())?;
        let form = reqwest::multipart::Form::new().text("model", self.model.clone()).part("file", part);
        let mut req = self.http.post(&self.url).multipart(form);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        // Errors leave the URL out: it is configuration that may hold credentials (a key in
        // its query), and the message is logged and stored.
        let res = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = res.status();
        if !status.is_success() {
            return Err(format!("transcription service answered {status}"));
        }
        let v: serde_json::Value = res.json().await.map_err(|e| e.without_url().to_string())?;
        v["text"].as_str().map(|t| t.trim().to_owned()).ok_or_else(|| "no `text` in the answer".to_owned())
    }
}

/// Works through due jobs every couple of seconds.
pub fn spawn(app: Arc<AppState>, transcriber: Transcriber) {
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let due = match app.db.due_transcriptions(now_ms()).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "reading transcription jobs failed");
                    continue;
                }
            };
            for (file_id, case_id, user_id, attempts) in due {
                let res = run_one(&app, &transcriber, file_id).await;
                let (status, next, error) = match res {
                    Ok(text) => {
                        // The transcript is a case event, in the uploader's name.
                        let cmd = Command {
                            who: Principal::system(user_id),
                            client_id: Some(format!("transcript:{file_id}")),
                            body: CaseCommand::AddTranscript { file_id, text },
                        };
                        match app.registry.command(case_id, cmd).await {
                            Ok(_) => ("done", now_ms(), None),
                            Err(e) => ("pending", now_ms() + backoff(attempts), Some(e.message)),
                        }
                    }
                    Err(e) if attempts + 1 >= MAX_ATTEMPTS => ("failed", now_ms(), Some(e)),
                    Err(e) => ("pending", now_ms() + backoff(attempts), Some(e)),
                };
                if let Some(e) = &error {
                    tracing::warn!(file = %file_id, attempts, error = %e, "transcription failed; will retry");
                }
                if let Err(e) = app.db.transcription_attempted(file_id, status, next, error.as_deref()).await
                {
                    tracing::warn!(error = %e, "recording a transcription attempt failed");
                }
            }
        }
    });
}

fn backoff(attempts: i64) -> i64 {
    (5_000i64 << attempts.clamp(0, 10)).min(3_600_000)
}

async fn run_one(
    app: &AppState,
    t: &Transcriber,
    file_id: articula_protocol::FileId,
) -> Result<String, String> {
    let file = app.db.file(file_id).await.map_err(|e| e.to_string())?.ok_or("the voice note is gone")?;
    if file.size > MAX_BYTES {
        return Err(format!("voice note larger than {MAX_BYTES} bytes"));
    }
    let key = app.files.file_key(&file).await.map_err(|e| e.to_string())?;
    let sealed = SealedFile {
        store: app.files.store.clone(),
        object_key: file.object_key.clone(),
        key,
        file_id: *file.id.0.as_bytes(),
        segments: file.segments.clone(),
        size: file.size,
    };
    let chunks: Vec<bytes::Bytes> =
        sealed.range(0, file.size - 1).try_collect().await.map_err(|e| e.to_string())?;
    let audio = chunks.concat();
    t.transcribe(&file.name, &file.content_type, audio).await
}

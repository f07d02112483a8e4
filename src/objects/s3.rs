//! Objects in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO and the like), through
//! aws-sdk-s3. Large objects go up as multipart uploads in 8 MiB parts, read from the local
//! sealed file one part at a time, so memory stays flat.

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::io::AsyncReadExt;

use super::{ObjectError, ObjectStore};
use crate::config::Settings;

/// Size of a multipart part (S3's minimum is 5 MiB, except for the last part).
const PART: usize = 8 * 1024 * 1024;

/// The S3 store.
pub struct S3Store {
    client: Client,
    bucket: String,
}

fn err(e: impl std::fmt::Display) -> ObjectError {
    ObjectError(e.to_string())
}

fn sdk_err<E: std::error::Error + Send + Sync + 'static>(e: aws_sdk_s3::error::SdkError<E>) -> ObjectError {
    // The SDK's Display is terse; the source chain says what happened.
    ObjectError(format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
}

impl S3Store {
    /// A store from the `s3_*` settings (validated at start).
    pub async fn new(settings: &Settings) -> Result<Self, ObjectError> {
        let bucket = settings.s3_bucket.clone().ok_or_else(|| ObjectError("no bucket".into()))?;
        let access = settings.s3_access_key.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
        let secret = settings.s3_secret_key.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.s3_region.clone()))
            .credentials_provider(Credentials::new(access, secret, None, None, "articula"))
            .force_path_style(settings.s3_path_style);
        if let Some(endpoint) = &settings.s3_endpoint {
            config = config.endpoint_url(endpoint);
        }
        let client = Client::from_conf(config.build());
        // Fail at start, with a clear message, when the bucket is not reachable.
        client
            .head_bucket()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| ObjectError(format!("bucket {bucket:?} is not reachable: {}", sdk_err(e))))?;
        Ok(Self { client, bucket })
    }

    async fn put_multipart(&self, key: &str, local: &Path) -> Result<(), ObjectError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(sdk_err)?;
        let upload_id = created.upload_id().ok_or_else(|| ObjectError("no upload id".into()))?.to_owned();
        let res = async {
            let mut file = tokio::fs::File::open(local).await.map_err(err)?;
            let mut parts = Vec::new();
            let mut buf = vec![0u8; PART];
            for number in 1.. {
                let mut filled = 0;
                while filled < PART {
                    let n = file.read(&mut buf[filled..]).await.map_err(err)?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(Bytes::copy_from_slice(&buf[..filled])))
                    .send()
                    .await
                    .map_err(sdk_err)?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
                if filled < PART {
                    break;
                }
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(sdk_err)?;
            Ok(())
        }
        .await;
        if res.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        res
    }
}

impl ObjectStore for S3Store {
    fn put_file<'a>(&'a self, key: &'a str, local: &'a Path) -> BoxFuture<'a, Result<(), ObjectError>> {
        async move {
            let len = tokio::fs::metadata(local).await.map_err(err)?.len();
            if len as usize <= PART {
                let body = ByteStream::from_path(local).await.map_err(err)?;
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .body(body)
                    .send()
                    .await
                    .map_err(sdk_err)?;
            } else {
                self.put_multipart(key, local).await?;
            }
            let _ = tokio::fs::remove_file(local).await;
            Ok(())
        }
        .boxed()
    }

    fn get_range<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes, ObjectError>> {
        async move {
            if len == 0 {
                return Ok(Bytes::new());
            }
            let range = format!("bytes={}-{}", offset, offset + len - 1);
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .range(range)
                .send()
                .await
                .map_err(sdk_err)?;
            let data = out.body.collect().await.map_err(err)?.into_bytes();
            if data.len() as u64 != len {
                return Err(ObjectError(format!("short read: {} of {len} bytes", data.len())));
            }
            Ok(data)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ObjectError>> {
        async move {
            self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(sdk_err)?;
            Ok(())
        }
        .boxed()
    }

    fn kind(&self) -> &'static str {
        "s3"
    }
}

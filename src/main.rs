//! The `articula` binary: see `articula --help`.

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    articula::cli::run().await
}

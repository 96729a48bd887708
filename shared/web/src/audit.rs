//! Writing to the audit log from a request (the log itself is `tongban_runtime::store::audit`).
//! Apart from `state` so that the login guard, which `state` holds, can record too.

use tongban_runtime::store::Store;

use crate::error::AppError;

/// Records `what` in the audit log and waits until it is on disk: the action it records is
/// acknowledged only after this.
pub async fn record(
    store: &Store,
    who: &str,
    what: &'static str,
    subject: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<(), AppError> {
    let store = store.clone();
    let (who, subject) = (who.to_string(), subject.to_string());
    tokio::task::spawn_blocking(move || store.audit(&who, what, &subject, ip))
        .await
        .map_err(AppError::internal)??;
    Ok(())
}

//! Who may call each RPC: the one table, keyed by the full gRPC method path.
//!
//! The auth layer (`crate::layers::auth`) looks every call up here: public
//! RPCs pass without credentials; the others need a valid credential and,
//! for most, a scope of `auth::scopes` (refused with PERMISSION_DENIED,
//! reason SCOPE_INSUFFICIENT, naming the scope). `admin` RPCs also need the
//! admin role (reason PERMISSION_DENIED). A unit test checks that every RPC
//! of the descriptor has exactly one entry, so an RPC added to the contract
//! without one fails the build's tests instead of being callable by every
//! key. The README's scopes table is checked against this one
//! (`tests/api/readme.rs`).

use super::scopes::Scope;

/// What an RPC requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (the RPCs that obtain one, and liveness).
    Public,
    /// Any valid credential, whatever its scopes (who am I; is the service up).
    Authenticated,
    /// A valid credential holding this scope.
    Scope(Scope),
    /// A valid credential holding this scope, or no credential at all: then
    /// the handler requires a watch token in the request
    /// (`auth::watch_tokens`). Only WatchOperation.
    ScopeOrWatchToken(Scope),
}

impl Access {
    /// The scope a credential needs, if any.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Access::Public | Access::Authenticated => None,
            Access::Scope(scope) | Access::ScopeOrWatchToken(scope) => Some(scope),
        }
    }
}

use Access::{Authenticated, Public, Scope as Needs};
use Scope::{Account, Admin, FilesRead, FilesWrite, Keys, OperationsRead, OperationsWrite};

/// Every RPC of `fileorganizer.v1`, by full method path.
pub const RPCS: &[(&str, Access)] = &[
    ("/fileorganizer.v1.AuthService/Register", Public),
    ("/fileorganizer.v1.AuthService/Login", Public),
    ("/fileorganizer.v1.AuthService/RefreshToken", Public),
    ("/fileorganizer.v1.AuthService/Logout", Needs(Account)),
    (
        "/fileorganizer.v1.AuthService/GetCurrentUser",
        Authenticated,
    ),
    (
        "/fileorganizer.v1.AuthService/UpdateCurrentUser",
        Needs(Account),
    ),
    ("/fileorganizer.v1.AuthService/CreateApiKey", Needs(Keys)),
    ("/fileorganizer.v1.AuthService/ListApiKeys", Needs(Keys)),
    ("/fileorganizer.v1.AuthService/RevokeApiKey", Needs(Keys)),
    ("/fileorganizer.v1.SystemService/GetHealth", Public),
    ("/fileorganizer.v1.SystemService/GetStatus", Authenticated),
    (
        "/fileorganizer.v1.SystemService/GetRateLimitStatus",
        Needs(Admin),
    ),
    (
        "/fileorganizer.v1.SystemService/ResetRateLimit",
        Needs(Admin),
    ),
    (
        "/fileorganizer.v1.SystemService/ListAuditEvents",
        Needs(Admin),
    ),
    (
        "/fileorganizer.v1.OperationService/CreateOperation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.OperationService/GetOperation",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.OperationService/ListOperations",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.OperationService/CancelOperation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.OperationService/ApplyOperation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.OperationService/UndoOperation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.OperationService/WatchOperation",
        Access::ScopeOrWatchToken(OperationsRead),
    ),
    // Grants one watch of one operation, nothing more than the caller has.
    (
        "/fileorganizer.v1.OperationService/CreateWatchToken",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.AutomationService/CreateAutomation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.AutomationService/GetAutomation",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.AutomationService/ListAutomations",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.AutomationService/UpdateAutomation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.AutomationService/DeleteAutomation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.AutomationService/PauseAutomation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.AutomationService/ResumeAutomation",
        Needs(OperationsWrite),
    ),
    (
        "/fileorganizer.v1.FileService/UploadFile",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/UploadSmallFile",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/ListDirectory",
        Needs(FilesRead),
    ),
    (
        "/fileorganizer.v1.FileService/DownloadFile",
        Needs(FilesRead),
    ),
    (
        "/fileorganizer.v1.FileService/DownloadArchive",
        Needs(FilesRead),
    ),
    (
        "/fileorganizer.v1.FileService/DeleteFile",
        Needs(FilesWrite),
    ),
    ("/fileorganizer.v1.FileService/ListTrash", Needs(FilesRead)),
    (
        "/fileorganizer.v1.FileService/RestoreFile",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/EmptyTrash",
        Needs(FilesWrite),
    ),
    // An operation's journal: part of the operation, like its report.
    (
        "/fileorganizer.v1.FileService/ImportArchive",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/ListFileRecords",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.FileService/SearchFiles",
        Needs(FilesRead),
    ),
    (
        "/fileorganizer.v1.FileService/ListCategories",
        Needs(FilesRead),
    ),
    (
        "/fileorganizer.v1.FileService/CreateCategory",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/UpdateCategory",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/DeleteCategory",
        Needs(FilesWrite),
    ),
    // Rules are settings of how files are organized, like categories.
    (
        "/fileorganizer.v1.RuleService/CreateRule",
        Needs(FilesWrite),
    ),
    ("/fileorganizer.v1.RuleService/GetRule", Needs(FilesRead)),
    ("/fileorganizer.v1.RuleService/ListRules", Needs(FilesRead)),
    (
        "/fileorganizer.v1.RuleService/UpdateRule",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.RuleService/DeleteRule",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.RuleService/PreviewRules",
        Needs(FilesRead),
    ),
    (
        "/fileorganizer.v1.FileService/UploadRawFile",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/CreateUpload",
        Needs(FilesWrite),
    ),
    ("/fileorganizer.v1.FileService/GetUpload", Needs(FilesWrite)),
    (
        "/fileorganizer.v1.FileService/AppendUpload",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/FinishUpload",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.FileService/CancelUpload",
        Needs(FilesWrite),
    ),
    (
        "/fileorganizer.v1.ReportService/GetOperationReport",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.ReportService/ListDuplicateGroups",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.ReportService/ExportReport",
        Needs(OperationsRead),
    ),
    (
        "/fileorganizer.v1.ReportService/GetUsageSummary",
        Needs(OperationsRead),
    ),
];

/// Services other than the API's own that are callable without credentials.
const PUBLIC_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// [`RPCS`] by path, built once: every call looks its RPC up here (up to
/// three times in the auth layer), a hash lookup instead of a scan of the
/// whole table.
static BY_PATH: std::sync::LazyLock<std::collections::HashMap<&'static str, Access>> =
    std::sync::LazyLock::new(|| RPCS.iter().copied().collect());

/// The table's entry for a method path; None for a path the API does not
/// have (tonic answers those UNIMPLEMENTED once a credential passed).
pub fn of(path: &str) -> Option<Access> {
    BY_PATH.get(path).copied()
}

/// Whether a call to `path` without credentials goes on to its handler,
/// which then requires a watch token in the request.
pub fn accepts_watch_token(path: &str) -> bool {
    matches!(of(path), Some(Access::ScopeOrWatchToken(_)))
}

/// Whether a path is callable without credentials.
pub fn is_public(path: &str) -> bool {
    of(path) == Some(Public) || PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The RPC's name for messages: `FileService/DeleteFile`.
pub fn short_name(path: &str) -> &str {
    path.trim_start_matches('/')
        .rsplit_once('.')
        .map_or(path, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;

    /// Every method of the contract, as a full gRPC path.
    fn contract() -> BTreeSet<String> {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        set.file
            .iter()
            .filter(|f| f.package() == "fileorganizer.v1")
            .flat_map(|f| {
                f.service.iter().flat_map(move |s| {
                    s.method
                        .iter()
                        .map(move |m| format!("/{}.{}/{}", f.package(), s.name(), m.name()))
                })
            })
            .collect()
    }

    #[test]
    fn every_rpc_of_the_descriptor_has_exactly_one_entry() {
        let listed: Vec<&str> = RPCS.iter().map(|(p, _)| *p).collect();
        let unique: BTreeSet<String> = listed.iter().map(|p| p.to_string()).collect();
        assert_eq!(listed.len(), unique.len(), "an RPC is listed twice");
        let contract = contract();
        let missing: Vec<_> = contract.difference(&unique).collect();
        assert!(
            missing.is_empty(),
            "RPCs without an access entry: {missing:?}"
        );
        let stale: Vec<_> = unique.difference(&contract).collect();
        assert!(
            stale.is_empty(),
            "entries for RPCs that do not exist: {stale:?}"
        );
    }

    #[test]
    fn only_the_listed_rpcs_are_public() {
        assert!(is_public("/fileorganizer.v1.AuthService/Login"));
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public("/fileorganizer.v1.SystemService/GetHealth"));
        assert!(!is_public("/fileorganizer.v1.SystemService/GetStatus"));
        assert!(!is_public("/fileorganizer.v1.AuthService/GetCurrentUser"));
        assert!(!is_public("/fileorganizer.v1.AuthService/LoginX"));
        // A watch token is accepted by WatchOperation, and by nothing else.
        let watch: Vec<&str> = RPCS
            .iter()
            .filter(|(p, _)| accepts_watch_token(p))
            .map(|(p, _)| short_name(p))
            .collect();
        assert_eq!(watch, ["OperationService/WatchOperation"]);
        assert!(!is_public(
            "/fileorganizer.v1.OperationService/WatchOperation"
        ));
        assert_eq!(
            short_name("/fileorganizer.v1.FileService/DeleteFile"),
            "FileService/DeleteFile"
        );
    }

    #[test]
    fn admin_rpcs_are_the_system_admin_rpcs_and_every_scope_is_used() {
        let admin: Vec<&str> = RPCS
            .iter()
            .filter(|(_, a)| *a == Needs(Admin))
            .map(|(p, _)| short_name(p))
            .collect();
        assert_eq!(
            admin,
            [
                "SystemService/GetRateLimitStatus",
                "SystemService/ResetRateLimit",
                "SystemService/ListAuditEvents"
            ]
        );
        for scope in Scope::ALL {
            assert!(
                RPCS.iter().any(|(_, a)| a.scope() == Some(scope)),
                "{scope} guards no RPC"
            );
        }
    }
}

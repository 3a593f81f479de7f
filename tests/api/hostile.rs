//! Hostile input against every RPC of every service, as raw protobuf bytes.
//!
//! The corpus is generated from the descriptor the server embeds
//! (`fileorganizer::pb::FILE_DESCRIPTOR_SET`), so a new RPC or field is
//! attacked as soon as it exists; [`REVIEWED`] pins the RPC list so that a
//! new one also makes someone check whether it needs a safe base message
//! (see [`base_fields`]). Requests are hand-encoded and sent through a
//! generic `tonic::client::Grpc` with a bytes codec, which is how invalid
//! UTF-8, unknown enum values, wrong wire types and malformed bytes reach
//! the server at all (prost's typed clients cannot send them).
//!
//! What every answer must be: never INTERNAL, UNKNOWN or any other
//! server-fault code, never a hang; INVALID_ARGUMENT carries a BadRequest
//! naming a field of the request (for undecodable bytes the exact field
//! prost stopped at, or `request`); an oversized message is
//! RESOURCE_EXHAUSTED (see `src/layers/protocol_errors.rs`). Afterwards the
//! server is SERVING and answers normally, the user's files are all still
//! there byte for byte, and nothing appeared outside their root.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use fileorganizer::pb::fileorganizer::v1 as pb;
use prost::{
    Message,
    bytes::{Buf, BufMut},
    encoding::{WireType, encode_key, encode_varint},
};
use prost_types::{
    DescriptorProto, FileDescriptorSet, field_descriptor_proto::Label, field_descriptor_proto::Type,
};
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::MetadataValue,
    transport::Channel,
};

use crate::common::{Options, TestApp, bad_field, reason, tree};

/// Every RPC of the contract, reviewed for this corpus. A new RPC fails
/// [`corpus_covers_every_rpc`] until it is added here (after checking
/// whether its default request could change a user's files; if so give it a
/// safe base in [`base_fields`]).
const REVIEWED: &[&str] = &[
    "/fileorganizer.v1.AuthService/Register",
    "/fileorganizer.v1.AuthService/Login",
    "/fileorganizer.v1.AuthService/RefreshToken",
    "/fileorganizer.v1.AuthService/Logout",
    "/fileorganizer.v1.AuthService/GetCurrentUser",
    "/fileorganizer.v1.AuthService/UpdateCurrentUser",
    "/fileorganizer.v1.AuthService/CreateApiKey",
    "/fileorganizer.v1.AuthService/ListApiKeys",
    "/fileorganizer.v1.AuthService/RevokeApiKey",
    "/fileorganizer.v1.SystemService/GetHealth",
    "/fileorganizer.v1.SystemService/GetStatus",
    "/fileorganizer.v1.SystemService/GetRateLimitStatus",
    "/fileorganizer.v1.SystemService/ResetRateLimit",
    "/fileorganizer.v1.SystemService/ListAuditEvents",
    "/fileorganizer.v1.OperationService/CreateOperation",
    "/fileorganizer.v1.OperationService/GetOperation",
    "/fileorganizer.v1.OperationService/ListOperations",
    "/fileorganizer.v1.OperationService/CancelOperation",
    "/fileorganizer.v1.OperationService/ApplyOperation",
    "/fileorganizer.v1.OperationService/UndoOperation",
    "/fileorganizer.v1.OperationService/WatchOperation",
    // Issues a token only; moves nothing.
    "/fileorganizer.v1.OperationService/CreateWatchToken",
    "/fileorganizer.v1.FileService/UploadFile",
    "/fileorganizer.v1.FileService/UploadSmallFile",
    "/fileorganizer.v1.FileService/ListDirectory",
    "/fileorganizer.v1.FileService/DownloadFile",
    // Reads only; a hostile path or operation is refused before any byte is written.
    "/fileorganizer.v1.FileService/DownloadArchive",
    "/fileorganizer.v1.FileService/DeleteFile",
    "/fileorganizer.v1.FileService/ListTrash",
    "/fileorganizer.v1.FileService/RestoreFile",
    "/fileorganizer.v1.FileService/EmptyTrash",
    "/fileorganizer.v1.FileService/ListFileRecords",
    "/fileorganizer.v1.FileService/SearchFiles",
    "/fileorganizer.v1.FileService/ListCategories",
    "/fileorganizer.v1.FileService/CreateCategory",
    "/fileorganizer.v1.FileService/UpdateCategory",
    "/fileorganizer.v1.FileService/DeleteCategory",
    "/fileorganizer.v1.FileService/UploadRawFile",
    "/fileorganizer.v1.FileService/CreateUpload",
    "/fileorganizer.v1.FileService/GetUpload",
    "/fileorganizer.v1.FileService/AppendUpload",
    "/fileorganizer.v1.FileService/FinishUpload",
    "/fileorganizer.v1.FileService/CancelUpload",
    // No body: nothing to extract; a hostile path is refused before any byte is read.
    "/fileorganizer.v1.FileService/ImportArchive",
    "/fileorganizer.v1.ReportService/GetOperationReport",
    "/fileorganizer.v1.ReportService/ListDuplicateGroups",
    "/fileorganizer.v1.ReportService/ExportReport",
    "/fileorganizer.v1.ReportService/GetUsageSummary",
    // Rules only configure; PreviewRules reads. None moves a file.
    "/fileorganizer.v1.RuleService/CreateRule",
    "/fileorganizer.v1.RuleService/GetRule",
    "/fileorganizer.v1.RuleService/ListRules",
    "/fileorganizer.v1.RuleService/UpdateRule",
    "/fileorganizer.v1.RuleService/DeleteRule",
    "/fileorganizer.v1.RuleService/PreviewRules",
    "/fileorganizer.v1.AutomationService/CreateAutomation",
    "/fileorganizer.v1.AutomationService/GetAutomation",
    "/fileorganizer.v1.AutomationService/ListAutomations",
    "/fileorganizer.v1.AutomationService/UpdateAutomation",
    "/fileorganizer.v1.AutomationService/DeleteAutomation",
    "/fileorganizer.v1.AutomationService/PauseAutomation",
    "/fileorganizer.v1.AutomationService/ResumeAutomation",
];

/// Fields set in every request of an RPC before the hostile one (merged by
/// protobuf): CreateOperation only ever plans (`dry_run`), so no hostile
/// source or layout can move the user's files; nor can an automation a
/// hostile request manages to create (its runs only plan).
fn base_fields(method: &str) -> Vec<(&'static [&'static str], u64)> {
    match method {
        "/fileorganizer.v1.OperationService/CreateOperation" => {
            vec![(&["operation", "dry_run"], 1)]
        }
        "/fileorganizer.v1.AutomationService/CreateAutomation"
        | "/fileorganizer.v1.AutomationService/UpdateAutomation" => {
            vec![(&["automation", "operation", "dry_run"], 1)]
        }
        _ => Vec::new(),
    }
}

/// Strings that are attacks on a path (or any) field. The first group can
/// only be refused; the rest are legal names and must stay in the root.
const ESCAPES: &[&str] = &[
    "../x.txt",
    "..",
    "a/../../x.txt",
    "keep/../../x.txt",
    "/etc/passwd",
    "..\\x.txt",
    "C:\\Windows\\x.txt",
    "\\\\server\\share\\x.txt",
    "x\0.txt",
    "\0",
];
const ODD_BUT_LEGAL: &[&str] = &[
    "%2e%2e/x.txt",
    "%2e%2e%2fx.txt",
    "....//x.txt",
    "\u{2024}\u{2024}/x.txt",
    "\u{ff0e}\u{ff0e}\u{ff0f}x.txt",
    "..\u{2215}x.txt",
    "\u{ff0e}\u{ff0e}/\u{ff0e}\u{ff0e}/x.txt",
    "C:x.txt",
    "\u{202e}txt.exe",
    "=cmd|' /C calc'!A0",
    "",
    ".",
    "./",
];

fn long_values() -> Vec<String> {
    vec![
        "n".repeat(256),                        // NAME_MAX + 1
        format!("{}/x.txt", "d/".repeat(2100)), // beyond PATH_MAX
        "x".repeat(200_000),                    // a huge field
    ]
}

const INTS: &[i64] = &[-1, i32::MIN as i64, i32::MAX as i64, i64::MIN, i64::MAX];
const ENUMS: &[i64] = &[9999, -1, i32::MAX as i64];

/// Codes that mean the server failed, whatever the input.
const SERVER_FAULTS: &[Code] = &[
    Code::Internal,
    Code::Unknown,
    Code::DataLoss,
    Code::Unavailable,
    Code::DeadlineExceeded,
    Code::Unimplemented,
    Code::Cancelled,
    Code::Aborted,
];

// ---------------------------------------------------------------------------
// A bytes codec: whatever we encoded goes out as one gRPC message.

#[derive(Clone, Copy, Default)]
pub(crate) struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

/// Sends `body` as the only message of a call to `method` (any of the four
/// kinds: on the wire they are all one POST of framed messages) and drains
/// the answer. A hang is a failure, not a skip.
pub(crate) async fn call(
    channel: &Channel,
    method: &str,
    body: Vec<u8>,
    key: &str,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let mut request = Request::new(tokio_stream::once(body));
    request
        .metadata_mut()
        .insert("x-api-key", MetadataValue::try_from(key).unwrap());
    let path: http::uri::PathAndQuery = method.parse().unwrap();
    let exchange = async {
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut stream = grpc.streaming(request, path, RawCodec).await?.into_inner();
        // A stream that succeeds (a watch of a live operation) is cut after
        // its first message: the point is only that it answered.
        stream.message().await.map(drop)
    };
    tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method}: no answer within 60 s (hang)"))
}

// ---------------------------------------------------------------------------
// The descriptor, and requests built from it.

struct Schema {
    messages: HashMap<String, DescriptorProto>,
    /// (method path, input type, client streaming)
    methods: Vec<(String, String)>,
}

impl Schema {
    fn load() -> Schema {
        let set = FileDescriptorSet::decode(fileorganizer::pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut messages = HashMap::new();
        let mut methods = Vec::new();
        fn add(prefix: &str, m: &DescriptorProto, out: &mut HashMap<String, DescriptorProto>) {
            let name = format!("{prefix}.{}", m.name());
            for nested in &m.nested_type {
                add(&name, nested, out);
            }
            out.insert(name, m.clone());
        }
        for file in &set.file {
            let prefix = format!(".{}", file.package());
            for m in &file.message_type {
                add(&prefix, m, &mut messages);
            }
            if file.package() != "fileorganizer.v1" {
                continue;
            }
            for service in &file.service {
                for method in &service.method {
                    methods.push((
                        format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                        method.input_type().to_string(),
                    ));
                }
            }
        }
        Schema { messages, methods }
    }

    /// Every field reachable from `message` within `depth` levels, as the
    /// chain of (number, name, type, type name) from the top.
    fn fields(&self, message: &str, depth: usize) -> Vec<Vec<FieldInfo>> {
        let mut out = Vec::new();
        let Some(m) = self.messages.get(message) else {
            return out;
        };
        for f in &m.field {
            let info = FieldInfo::of(m, f);
            if info.kind == Type::Message && depth > 1 {
                for tail in self.fields(&info.type_name, depth - 1) {
                    let mut chain = vec![info.clone()];
                    chain.extend(tail);
                    out.push(chain);
                }
            }
            out.push(vec![info]);
        }
        out
    }

    /// The chain of fields named `names` from `message`.
    fn chain(&self, message: &str, names: &[&str]) -> Vec<FieldInfo> {
        let mut current = message.to_string();
        names
            .iter()
            .map(|name| {
                let m = &self.messages[&current];
                let f = m
                    .field
                    .iter()
                    .find(|f| f.name() == *name)
                    .unwrap_or_else(|| panic!("{current} has no field {name}"));
                current = f.type_name().to_string();
                FieldInfo::of(m, f)
            })
            .collect()
    }

    /// Whether `path` (dotted) names a field of `message` (the last part
    /// may be a oneof: prost names the oneof of a scalar member).
    fn has_path(&self, message: &str, path: &str) -> bool {
        let mut current = message.to_string();
        for name in path.split('.') {
            let Some(m) = self.messages.get(&current) else {
                return false;
            };
            if let Some(f) = m.field.iter().find(|f| f.name() == name) {
                current = f.type_name().to_string();
            } else {
                return m.oneof_decl.iter().any(|o| o.name() == name);
            }
        }
        true
    }
}

#[derive(Clone, Debug)]
struct FieldInfo {
    number: u32,
    name: String,
    kind: Type,
    type_name: String,
    repeated: bool,
    /// The real (not proto3 `optional`) oneof the field belongs to.
    oneof: Option<String>,
}

impl FieldInfo {
    fn of(m: &DescriptorProto, f: &prost_types::FieldDescriptorProto) -> FieldInfo {
        FieldInfo {
            number: f.number() as u32,
            name: f.name().to_string(),
            kind: f.r#type(),
            type_name: f.type_name().to_string(),
            repeated: f.label() == Label::Repeated,
            oneof: f
                .oneof_index
                .filter(|_| !f.proto3_optional())
                .and_then(|i| m.oneof_decl.get(i as usize))
                .map(|o| o.name().to_string()),
        }
    }
}

fn dotted(chain: &[FieldInfo]) -> String {
    chain
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// The leaf value of a field on the wire.
enum Leaf<'a> {
    Bytes(&'a [u8]),
    Varint(u64),
}

/// Encodes `leaf` at the end of `chain`, each parent a length-delimited
/// embedded message.
fn encode(chain: &[FieldInfo], leaf: Leaf<'_>) -> Vec<u8> {
    let (last, parents) = chain.split_last().expect("a field");
    let mut buf = Vec::new();
    match leaf {
        Leaf::Bytes(bytes) => {
            encode_key(last.number, WireType::LengthDelimited, &mut buf);
            encode_varint(bytes.len() as u64, &mut buf);
            buf.extend_from_slice(bytes);
        }
        Leaf::Varint(v) => {
            encode_key(last.number, WireType::Varint, &mut buf);
            encode_varint(v, &mut buf);
        }
    }
    for parent in parents.iter().rev() {
        let mut outer = Vec::new();
        encode_key(parent.number, WireType::LengthDelimited, &mut outer);
        encode_varint(buf.len() as u64, &mut outer);
        outer.extend_from_slice(&buf);
        buf = outer;
    }
    buf
}

/// Whether the server's `named` field is `chain` (or a prefix of it, or
/// the oneof holding its last field).
fn names_field(named: &str, chain: &[FieldInfo]) -> bool {
    if named.is_empty() {
        return false;
    }
    let field = dotted(chain);
    let as_oneof = chain.split_last().and_then(|(last, parents)| {
        let oneof = last.oneof.as_ref()?;
        let mut names: Vec<&str> = parents.iter().map(|f| f.name.as_str()).collect();
        names.push(oneof);
        Some(names.join("."))
    });
    field == named || field.starts_with(&format!("{named}.")) || as_oneof.as_deref() == Some(named)
}

/// A field's value with the wrong wire type (prost must refuse it).
fn wrong_wire_type(chain: &[FieldInfo]) -> Vec<u8> {
    let last = chain.last().unwrap();
    let varint_kinds = [
        Type::Int32,
        Type::Int64,
        Type::Uint32,
        Type::Uint64,
        Type::Sint32,
        Type::Sint64,
        Type::Bool,
        Type::Enum,
    ];
    if varint_kinds.contains(&last.kind) && !last.repeated {
        // Packed repeated scalars accept length-delimited: only singular.
        encode(chain, Leaf::Bytes(b"\x01"))
    } else {
        encode(chain, Leaf::Varint(1))
    }
}

// ---------------------------------------------------------------------------
// The corpus.

struct Target {
    /// Answers that broke a rule, reported together at the end.
    faults: std::sync::Mutex<Vec<String>>,
    app: TestApp,
    channel: Channel,
    key: String,
    schema: Schema,
    /// Outside the user's root, next to it: must never change.
    outside: std::path::PathBuf,
    root: std::path::PathBuf,
}

async fn target(options: Options) -> Target {
    let app = TestApp::spawn_with(options).await;
    let email = TestApp::email("hostile");
    let session = app.register(&email).await;
    let user_id = session.user.unwrap().id;
    // An admin, so the admin RPCs validate their input instead of refusing.
    let mut conn = app.db().await;
    fileorganizer::db::users::set_role(&mut conn, &email, fileorganizer::domain::Role::Admin)
        .await
        .unwrap();
    // An API key: no corpus call (Logout, a password change) can end it.
    let key = crate::auth::create_key(&app, &session.access_token, "hostile")
        .await
        .secret;
    let root = app.state.config.storage_root.join(&user_id);
    tree::write(&root, "keep/important.txt", b"do not lose me");
    tree::write(&root, "keep/x.txt", b"an existing x");
    tree::write(&root, "x.txt", b"top-level x");
    tree::write(&root, ".hidden", b"hidden");
    let outside = app.state.config.storage_root.join("outside");
    tree::write(&outside, "x.txt", b"someone else's x");
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy();
    Target {
        faults: Default::default(),
        app,
        channel,
        key,
        schema: Schema::load(),
        outside,
        root,
    }
}

impl Target {
    fn base(&self, method: &str, input: &str) -> Vec<u8> {
        base_fields(method)
            .into_iter()
            .flat_map(|(names, v)| encode(&self.schema.chain(input, names), Leaf::Varint(v)))
            .collect()
    }

    /// Sends one request and checks the answer is one a client can act on.
    async fn send(
        &self,
        method: &str,
        input: &str,
        body: Vec<u8>,
        what: &str,
    ) -> Result<(), Status> {
        let mut full = self.base(method, input);
        full.extend(body);
        let result = call(&self.channel, method, full, &self.key).await;
        if let Err(status) = &result {
            let mut faults = self.faults.lock().unwrap();
            if SERVER_FAULTS.contains(&status.code()) {
                faults.push(format!("{method} {what}: server fault {status:?}"));
            }
            if status.code() == Code::InvalidArgument {
                let field = bad_field(status);
                if field != fileorganizer::layers::protocol_errors::WHOLE_REQUEST
                    && !self.schema.has_path(input, &field)
                {
                    faults.push(format!(
                        "{method} {what}: INVALID_ARGUMENT names {field:?}, not a field of {input}: {status:?}"
                    ));
                }
                if reason(status).is_empty() {
                    faults.push(format!("{method} {what}: no ErrorInfo"));
                }
            }
        }
        result
    }
}

impl Target {
    /// Sends `body` and requires INVALID_ARGUMENT naming the field `chain`.
    async fn expect_field_named(
        &self,
        method: &str,
        input: &str,
        body: Vec<u8>,
        chain: &[FieldInfo],
        what: &str,
    ) {
        let field = dotted(chain);
        let status = self
            .send(method, input, body, &format!("{field}: {what}"))
            .await
            .expect_err(&format!("{method}: {what} in {field} accepted"));
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{method} {field}: {status:?}"
        );
        assert!(
            names_field(&bad_field(&status), chain),
            "{method} {what}: names {:?}, expected {field:?}",
            bad_field(&status)
        );
    }
}

/// Strings and numbers no client should send, in every field of every RPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_field_values_get_clean_answers_from_every_rpc() {
    let t = target(Options::default()).await;
    let before = tree::snapshot(&t.root);
    let outside_before = tree::snapshot(&t.outside);
    let long = long_values();
    let strings: Vec<&str> = ESCAPES
        .iter()
        .chain(ODD_BUT_LEGAL)
        .copied()
        .chain(long.iter().map(String::as_str))
        .collect();
    let mut calls = 0;
    for (method, input) in &t.schema.methods {
        for chain in t.schema.fields(input, 3) {
            let field = dotted(&chain);
            let leaf = chain.last().unwrap();
            match leaf.kind {
                Type::String => {
                    for value in &strings {
                        let body = encode(&chain, Leaf::Bytes(value.as_bytes()));
                        let what = format!("{field}={:?}", truncate(value));
                        let result = t.send(method, input, body, &what).await;
                        let is_path = leaf.name == "path" || leaf.name.ends_with("_path");
                        if is_path && ESCAPES.contains(value) {
                            let status =
                                result.expect_err(&format!("{method}: escape {what} was accepted"));
                            assert!(
                                matches!(
                                    status.code(),
                                    Code::InvalidArgument | Code::NotFound | Code::PermissionDenied
                                ),
                                "{method} {what}: {status:?}"
                            );
                        }
                        calls += 1;
                    }
                }
                Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 => {
                    for v in INTS {
                        let body = encode(&chain, Leaf::Varint(*v as u64));
                        t.send(method, input, body, &format!("{field}={v}"))
                            .await
                            .ok();
                        calls += 1;
                    }
                }
                Type::Enum => {
                    for v in ENUMS {
                        let body = encode(&chain, Leaf::Varint(*v as u64));
                        t.send(method, input, body, &format!("{field}={v}"))
                            .await
                            .ok();
                        calls += 1;
                    }
                }
                _ => {}
            }
        }
    }
    assert!(calls > 1000, "only {calls} calls");
    t.assert_healthy_and_untouched(&before, &outside_before)
        .await;
}

/// Bytes that are not a valid encoding of the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_argument_naming_the_field() {
    let t = target(Options::default()).await;
    let before = tree::snapshot(&t.root);
    let outside_before = tree::snapshot(&t.outside);
    let malformed: &[(&str, &[u8])] = &[
        ("invalid varint key", &[0xff; 11]),
        ("truncated length", &[0x0a, 0x80]),
        ("length past the end", &[0x0a, 0x05, b'a']),
        ("field number 0", &[0x00, 0x01]),
        ("wire type 7", &[0x0f, 0x01]),
        ("unterminated group", &[0x0b]),
        ("stray end group", &[0x0c]),
    ];
    for (method, input) in &t.schema.methods {
        for (label, bytes) in malformed {
            let status = t
                .send(method, input, bytes.to_vec(), label)
                .await
                .expect_err(&format!("{method}: {label} accepted"));
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{method} {label}: {status:?}"
            );
            assert_eq!(reason(&status), "INVALID_ARGUMENT");
        }
        for chain in t.schema.fields(input, 3) {
            // Invalid UTF-8 in a string field: the exact field is named.
            if chain.last().unwrap().kind == Type::String {
                let body = encode(&chain, Leaf::Bytes(b"ok\xff\xfe\xc0\x80"));
                t.expect_field_named(method, input, body, &chain, "invalid UTF-8")
                    .await;
            }
            // The wrong wire type for the field: named too.
            t.expect_field_named(method, input, wrong_wire_type(&chain), &chain, "wire type")
                .await;
        }
    }
    t.assert_healthy_and_untouched(&before, &outside_before)
        .await;
}

/// A message over MAX_MESSAGE_BYTES, to every RPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_resource_exhausted() {
    let t = target(Options {
        env: vec![
            ("MAX_MESSAGE_BYTES", (1 << 20).to_string()),
            ("MAX_UPLOAD_BYTES", (512 << 10).to_string()),
        ],
        ..Default::default()
    })
    .await;
    let before = tree::snapshot(&t.root);
    let outside_before = tree::snapshot(&t.outside);
    // An unknown field (number 999) carrying a bit more than 1 MiB.
    let mut body = Vec::new();
    encode_key(999, WireType::LengthDelimited, &mut body);
    let payload = vec![b'z'; (1 << 20) + 1];
    encode_varint(payload.len() as u64, &mut body);
    body.extend_from_slice(&payload);
    for (method, input) in &t.schema.methods {
        let status = t
            .send(method, input, body.clone(), "oversized")
            .await
            .expect_err(&format!("{method}: oversized message accepted"));
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{method}: {status:?}"
        );
        assert_eq!(reason(&status), "QUOTA_EXCEEDED", "{method}");
    }
    t.assert_healthy_and_untouched(&before, &outside_before)
        .await;
}

#[test]
fn corpus_covers_every_rpc() {
    let schema = Schema::load();
    let described: BTreeSet<&str> = schema.methods.iter().map(|(m, _)| m.as_str()).collect();
    let reviewed: BTreeSet<&str> = REVIEWED.iter().copied().collect();
    assert_eq!(
        described, reviewed,
        "the RPCs changed: review the new ones (base_fields) and update REVIEWED"
    );
}

impl Target {
    async fn assert_healthy_and_untouched(
        &self,
        before: &BTreeMap<String, tree::Entry>,
        outside_before: &BTreeMap<String, tree::Entry>,
    ) {
        assert_eq!(
            self.app.health_status().await,
            1,
            "not SERVING after the corpus"
        );
        let me = self
            .app
            .auth()
            .get_current_user(crate::common::api_key(
                pb::GetCurrentUserRequest {},
                &self.key,
            ))
            .await
            .expect("a normal call after the corpus");
        assert!(!me.into_inner().id.is_empty());
        // Every file the user had is still there, byte for byte (uploads of
        // legal odd names may have added some).
        let after = tree::snapshot(&self.root);
        for (path, entry) in before {
            assert_eq!(after.get(path), Some(entry), "{path} changed or vanished");
        }
        assert_eq!(&tree::snapshot(&self.outside), outside_before);
        // Nothing was written next to the users' roots.
        let storage = &self.app.state.config.storage_root;
        for entry in std::fs::read_dir(storage).unwrap() {
            let entry = entry.unwrap();
            assert!(
                entry.file_type().unwrap().is_dir(),
                "{:?} appeared in the storage root",
                entry.path()
            );
        }
    }
}

fn truncate(value: &str) -> String {
    value.chars().take(40).collect()
}

/// The same spirit through Envoy's REST transcoding: bad JSON, wrong types,
/// unknown fields, huge bodies, NUL and traversal in query parameters and
/// path segments. Each is a 4xx with a JSON error body (`code`, `message`);
/// never a 5xx, never text.
/// A hostile REST request: label, method, path and query, JSON body, and
/// the statuses it may get.
type RestCase<'a> = (
    &'a str,
    reqwest::Method,
    &'a str,
    Option<&'a str>,
    &'a [reqwest::StatusCode],
);

const BAD: &[reqwest::StatusCode] = &[reqwest::StatusCode::BAD_REQUEST];
const MISSING: &[reqwest::StatusCode] = &[
    reqwest::StatusCode::BAD_REQUEST,
    reqwest::StatusCode::NOT_FOUND,
];

/// Sends each case through the real Envoy to a fresh target: each gets one
/// of its statuses with a JSON `{"code", "message"}` body; afterwards the
/// server is healthy and nothing on disk changed.
async fn assert_json_client_errors(cases: Vec<RestCase<'_>>) {
    let t = target(Options::default()).await;
    let before = tree::snapshot(&t.root);
    let outside_before = tree::snapshot(&t.outside);
    let envoy = crate::common::envoy::Envoy::start(t.app.addr.port()).await;
    let http = reqwest::Client::new();
    let token = t.app.register(&TestApp::email("rest")).await.access_token;
    for (label, method, path, body, expected) in cases {
        let mut request = http.request(method, envoy.url(path)).bearer_auth(&token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        assert!(
            expected.contains(&status),
            "{label}: {status} {}",
            truncate(&text)
        );
        assert!(
            content_type.starts_with("application/json"),
            "{label}: {status} with {content_type:?}: {}",
            truncate(&text)
        );
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{label}: not JSON ({e}): {}", truncate(&text)));
        assert!(json["code"].is_number(), "{label}: {json}");
        assert!(json["message"].is_string(), "{label}: {json}");
    }
    t.assert_healthy_and_untouched(&before, &outside_before)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_hostile_json_bodies_get_json_client_errors() {
    use reqwest::{Method, StatusCode};
    let bad = BAD;
    let huge = format!(
        r#"{{"path":"big.bin","content":"{}"}}"#,
        "A".repeat(33 << 20)
    );
    assert_json_client_errors(vec![
        (
            "malformed JSON",
            Method::POST,
            "/api/v1/auth/login",
            Some("{\"email\": "),
            bad,
        ),
        (
            "not JSON at all",
            Method::POST,
            "/api/v1/auth/login",
            Some("\u{0}\u{1}binary"),
            bad,
        ),
        (
            "JSON array",
            Method::POST,
            "/api/v1/auth/login",
            Some("[1,2,3]"),
            bad,
        ),
        (
            "wrong types",
            Method::POST,
            "/api/v1/auth/login",
            Some(r#"{"email":5,"password":[]}"#),
            bad,
        ),
        // Envoy's transcoder follows the proto3 JSON mapping and drops unknown
        // body fields (it has no switch to refuse them): never obeyed, the
        // login fails exactly as it would without it.
        (
            "unknown field",
            Method::POST,
            "/api/v1/auth/login",
            Some(r#"{"email":"a@example.com","password":"xxxxxxxxx","admin":true}"#),
            &[StatusCode::UNAUTHORIZED],
        ),
        (
            "invalid UTF-8 escape",
            Method::POST,
            "/api/v1/auth/login",
            Some(r#"{"email":"\ud800@example.com","password":"xxxxxxxxx"}"#),
            bad,
        ),
        (
            "NUL in a JSON string",
            Method::POST,
            "/api/v1/files",
            Some(r#"{"path":"a\u0000b","content":"eA=="}"#),
            bad,
        ),
        (
            "traversal in a JSON path",
            Method::POST,
            "/api/v1/files",
            Some(r#"{"path":"../../x.txt","content":"eA=="}"#),
            bad,
        ),
        (
            "content not base64",
            Method::POST,
            "/api/v1/files",
            Some(r#"{"path":"x.bin","content":"%%%"}"#),
            bad,
        ),
        (
            "unknown enum name",
            Method::POST,
            "/api/v1/files",
            Some(r#"{"path":"y.bin","content":"eA==","conflict_policy":"CLOBBER"}"#),
            bad,
        ),
        (
            "unknown enum number",
            Method::POST,
            "/api/v1/files",
            Some(r#"{"path":"y.bin","content":"eA==","conflict_policy":9999}"#),
            bad,
        ),
        // Envoy streams the transcoded message on; tonic finds it over
        // MAX_MESSAGE_BYTES: RESOURCE_EXHAUSTED (code 8), which is HTTP 429 in
        // the standard mapping. Past Envoy's own max_request_body_size: 413.
        (
            "body over the limit",
            Method::POST,
            "/api/v1/files",
            Some(huge.as_str()),
            &[StatusCode::PAYLOAD_TOO_LARGE, StatusCode::TOO_MANY_REQUESTS],
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_hostile_query_parameters_get_json_client_errors() {
    use reqwest::Method;
    let bad = BAD;
    let long_query = format!("/api/v1/files?path={}", "n".repeat(5000));
    assert_json_client_errors(vec![
        (
            "traversal in a query",
            Method::GET,
            "/api/v1/files?path=../../etc",
            None,
            bad,
        ),
        (
            "encoded traversal in a query",
            Method::GET,
            "/api/v1/files?path=%2e%2e%2f%2e%2e%2fetc",
            None,
            bad,
        ),
        (
            "NUL in a query",
            Method::GET,
            "/api/v1/files?path=a%00b",
            None,
            bad,
        ),
        (
            "absolute path in a query",
            Method::GET,
            "/api/v1/files:download?path=/etc/passwd",
            None,
            bad,
        ),
        (
            "backslashes in a query",
            Method::GET,
            "/api/v1/files?path=..%5C..%5Cx",
            None,
            bad,
        ),
        (
            "overlong path in a query",
            Method::GET,
            long_query.as_str(),
            None,
            bad,
        ),
        (
            "negative page size",
            Method::GET,
            "/api/v1/files?page_size=-5",
            None,
            bad,
        ),
        (
            "page size overflowing int32",
            Method::GET,
            "/api/v1/files?page_size=99999999999",
            None,
            bad,
        ),
        (
            "page size not a number",
            Method::GET,
            "/api/v1/files?page_size=ten",
            None,
            bad,
        ),
        (
            "garbage page token",
            Method::GET,
            "/api/v1/operations?page_token=%00%ff",
            None,
            bad,
        ),
        (
            "unknown query parameter",
            Method::GET,
            "/api/v1/files?debug=1",
            None,
            bad,
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_hostile_path_segments_get_json_client_errors() {
    use reqwest::Method;
    let missing = MISSING;
    let nul_in_segment = "/api/v1/operations/a%00b".to_string();
    let traversal_segment = "/api/v1/operations/..%2F..%2Fetc%2Fpasswd".to_string();
    assert_json_client_errors(vec![
        (
            "NUL in a path segment",
            Method::GET,
            nul_in_segment.as_str(),
            None,
            missing,
        ),
        (
            "traversal in a path segment",
            Method::GET,
            traversal_segment.as_str(),
            None,
            missing,
        ),
        (
            "dot segments",
            Method::GET,
            "/api/v1/operations/../../../etc/passwd",
            None,
            missing,
        ),
        (
            "traversal in a trash id",
            Method::POST,
            "/api/v1/trash/..%2F..%2Fx:restore",
            Some("{}"),
            missing,
        ),
    ])
    .await;
}

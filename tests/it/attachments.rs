//! Images and files in the chat (issue 14), on both storage backends: a local directory and a
//! real S3-compatible server (`s3s-fs`, started in-process on 127.0.0.1, storing to a temporary
//! directory), through real relays, WebSocket and HTTP clients.

use crate::support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A 1x1 PNG carrying a text chunk ("GPS" = "51.5N 0.1W") standing for metadata a phone adds.
fn png_with_metadata() -> Vec<u8> {
    png(1, 1, Some(b"GPS\x0051.5N 0.1W"))
}

/// A PNG chunk: length, type, data, CRC.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = 0xffff_ffffu32;
    for &b in kind.iter().chain(data) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

/// A PNG whose header says `width` x `height` (only the 1x1 pixel data is real: nothing is
/// decoded, so the header is all that counts).
fn png(width: u32, height: u32, text: Option<&[u8]>) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    if let Some(text) = text {
        out.extend(png_chunk(b"tEXt", text));
    }
    out.extend(png_chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x80, 0x00, 0x82, 0x00, 0x81,
        ],
    ));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A real, viewable RGB PNG: a `width` x `height` colour gradient (at most 64 KiB of pixels,
/// stored uncompressed), with a text chunk standing for a phone's metadata. For the pages.
pub fn gradient_png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend_from_slice(&[
                (x * 255 / width.max(1)) as u8,
                (y * 255 / height.max(1)) as u8,
                160,
            ]);
        }
    }
    assert!(raw.len() <= 65_535, "one stored deflate block");
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    let len = raw.len() as u16;
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(b"tEXt", b"GPS\x0051.5N 0.1W"));
    out.extend(png_chunk(b"IDAT", &zlib));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("http client")
}

/// Uploads `bytes` as `name`; returns the status and the JSON body.
async fn upload(
    env: &TestEnv,
    path: &str,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let res = http()
        .post(env.http_url(&format!("{path}?name={name}")))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(env: &TestEnv, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = http().get(env.http_url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("download")
}

/// Settings with the local backend in `dir` and uploads spooled to `dir/spool`.
fn local_settings(dir: &Path) -> gre_relay::config::Settings {
    let mut s = test_settings();
    s.storage.backend = "local".into();
    s.storage.local_dir = dir.join("objects").to_string_lossy().into_owned();
    std::fs::create_dir_all(dir.join("spool")).expect("spool dir");
    s.storage.spool_dir = dir.join("spool").to_string_lossy().into_owned();
    s
}

#[tokio::test]
async fn a_player_photo_goes_through_send_resume_history_and_download_without_its_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = TestEnv::start_with(local_settings(dir.path())).await;
    let mut staff = env.staff("staff-7").await;
    let mut player = env.player(29).await;

    let (status, body) = upload(
        &env,
        "/api/gre-chat/attachments",
        &player_token(29),
        "receipt.png",
        png_with_metadata(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let up = &body["attachment"];
    assert_eq!(up["type"], "image/png", "{body}");
    assert_eq!(up["kind"], "image");
    assert_eq!(
        (up["width"].as_u64(), up["height"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(up["name"], "receipt.png");
    let upload_id = up["id"].as_str().expect("id").to_owned();

    // Sent alone (no text): `message` holds the file name as a label.
    player
        .send_json(
            json!({"type": "send_message", "attachmentId": upload_id, "clientMessageId": "p-1"}),
        )
        .await;
    let sent = player.recv_type("message_sent").await;
    let message = &sent["message"];
    assert_eq!(message["message"], "receipt.png", "{sent}");
    assert_eq!(message["attachment"]["messageIsLabel"], true);
    assert_eq!(message["attachment"]["type"], "image/png");
    assert_eq!(message["attachment"]["size"], up["size"]);
    let message_id = message["id"].as_str().expect("id").to_owned();
    let session_id = message["sessionId"].as_str().expect("session").to_owned();

    // Live to staff, the same object.
    let live = staff.recv_type("chat_message").await;
    assert_eq!(
        live["message"]["attachment"], message["attachment"],
        "{live}"
    );

    // The same upload cannot be sent twice.
    player
        .send_json(json!({"type": "send_message", "attachmentId": upload_id, "message": "again"}))
        .await;
    let err = player.recv_type("error").await;
    assert_eq!(err["code"], "not_found", "{err}");

    // A caption with an attachment: typed text, not a label.
    let (_, body) = upload(
        &env,
        "/api/gre-chat/attachments",
        &player_token(29),
        "b.png",
        png(2, 3, None),
    )
    .await;
    let res = http()
        .post(env.http_url("/api/gre-chat/send"))
        .bearer_auth(player_token(29))
        .json(&json!({"message": "my payment", "attachmentId": body["attachment"]["id"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 201);
    let captioned: Value = res.json().await.expect("json");
    assert_eq!(captioned["message"]["message"], "my payment");
    assert_eq!(captioned["message"]["attachment"]["messageIsLabel"], false);
    assert_eq!(captioned["message"]["attachment"]["width"], 2);

    // History and resume carry it unchanged.
    let history: Value = get(&env, "/api/gre-chat/messages/29", Some(&player_token(29)))
        .await
        .json()
        .await
        .expect("history");
    let first = &history["messages"][0];
    assert_eq!(first["attachment"], message["attachment"], "{history}");
    let mut again = env.staff("staff-8").await;
    again
        .send_json(json!({"type": "subscribe", "sessionId": session_id, "since": "0"}))
        .await;
    let resumed = again.recv_type("chat_message").await;
    assert_eq!(resumed["message"]["attachment"], message["attachment"]);

    // Download by the player: the image, metadata gone, pixels kept, with safe headers.
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{message_id}"),
        Some(&player_token(29)),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-disposition"]
        .to_str()
        .unwrap_or("")
        .starts_with("inline"));
    let bytes = res.bytes().await.expect("bytes");
    assert!(!contains(&bytes, b"51.5N"), "metadata stripped");
    assert!(contains(&bytes, b"IDAT"));
    assert_eq!(bytes.len() as u64, up["size"].as_u64().expect("size"));

    // Another player: 403; staff: 200; nobody: 401.
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{message_id}"),
        Some(&player_token(30)),
    )
    .await;
    assert_eq!(res.status().as_u16(), 403);
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{message_id}/link"),
        Some(&player_token(30)),
    )
    .await;
    assert_eq!(res.status().as_u16(), 403);
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{message_id}"),
        Some(&staff_token("staff-7")),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{message_id}"),
        None,
    )
    .await;
    assert_eq!(res.status().as_u16(), 401);

    // A signed link works without a token, for its message only, and not once tampered with.
    let link: Value = get(
        &env,
        &format!("/api/gre-chat/attachments/{message_id}/link"),
        Some(&player_token(29)),
    )
    .await
    .json()
    .await
    .expect("link");
    let url = link["url"].as_str().expect("url");
    let res = get(&env, url, None).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("bytes"), bytes);
    let tampered = url.replace("expires=", "expires=9");
    assert_eq!(get(&env, &tampered, None).await.status().as_u16(), 403);
    let other = captioned["message"]["id"].as_str().expect("id");
    let moved = url.replace(&message_id, other);
    assert_eq!(get(&env, &moved, None).await.status().as_u16(), 403);

    // The DBA sees it in SQL.
    let db = env.db().await;
    let row = db
        .query_one(
            "select attachment_bucket, attachment_key, attachment_name, attachment_type, message_is_label \
               from gre_chat_messages where id = $1::text::uuid",
            &[&message_id],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("gre-chat"));
    assert!(row.get::<_, String>(1).starts_with("uploads/"));
    assert_eq!(row.get::<_, String>(3), "image/png");
    assert!(row.get::<_, bool>(4));
    // Nothing is left in the spool directory.
    assert!(files_under(&dir.path().join("spool")).is_empty());
}

#[tokio::test]
async fn wrong_types_renamed_html_huge_images_and_oversized_uploads_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = local_settings(dir.path());
    settings.storage.max_upload_bytes = 256 * 1024;
    let env = TestEnv::start_with(settings).await;
    let token = player_token(29);
    let path = "/api/gre-chat/attachments";

    let (status, body) = upload(
        &env,
        path,
        &token,
        "a.zip",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00rest".to_vec(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
        .repeat(20);
    let (status, body) = upload(&env, path, &token, "photo.jpg", html).await;
    assert_eq!(status, 415, "a renamed HTML file: {body}");
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec();
    assert_eq!(upload(&env, path, &token, "x.svg", svg).await.0, 415);
    assert_eq!(
        upload(&env, path, &token, "empty.png", Vec::new()).await.0,
        415
    );

    // A decompression bomb: a small file whose header says 100,000 x 100,000 pixels.
    let (status, body) = upload(&env, path, &token, "bomb.png", png(100_000, 100_000, None)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("pixels"),
        "{body}"
    );

    // Declared too large: refused before reading.
    let (status, body) = upload(&env, path, &token, "big.png", vec![0u8; 300 * 1024]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");

    // Streamed (chunked, no length) past the limit: cut off while streaming, answered 413.
    let mut head = png(1, 1, None);
    head.truncate(33);
    let (status, text) =
        raw_chunked_upload(env.relay().local_addr(), path, &token, &head, 400 * 1024).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");

    // Nothing refused was stored or left in the spool.
    assert!(files_under(&dir.path().join("spool")).is_empty());
    assert!(files_under(&dir.path().join("objects")).is_empty());
    let db = env.db().await;
    let n: i64 = db
        .query_one("select count(*) from gre_relay.attachment_uploads", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);

    // A message naming an attachment that does not exist, or nothing at all.
    let mut player = env.player(29).await;
    player
        .send_json(json!({"type": "send_message", "attachmentId": uuid::Uuid::new_v4()}))
        .await;
    assert_eq!(player.recv_type("error").await["code"], "not_found");
    player.send_json(json!({"type": "send_message"})).await;
    assert_eq!(player.recv_type("error").await["code"], "invalid_message");
}

/// Sends `head` and then zeros, `total` bytes in all, as a chunked body (no Content-Length), in
/// 16 KiB chunks, and reads the answer. Write errors after the server answered are expected.
pub async fn raw_chunked_upload(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    head: &[u8],
    total: usize,
) -> (u16, String) {
    let run = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "POST {path}?name=big.png HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.expect("head");
        let mut sent = 0usize;
        let mut first = true;
        while sent < total {
            let n = (total - sent).min(16 * 1024);
            let mut chunk = vec![0u8; n];
            if first {
                chunk[..head.len()].copy_from_slice(head);
                first = false;
            }
            let mut frame = format!("{n:x}\r\n").into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            if tcp.write_all(&frame).await.is_err() {
                break;
            }
            sent += n;
        }
        let _ = tcp.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&answer);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                            })
                            .unwrap_or(0);
                        if answer.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("upload timed out")
}

#[tokio::test]
async fn uploads_never_sent_are_swept_with_their_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = local_settings(dir.path());
    settings.storage.unused_upload_seconds = 1;
    settings.storage.sweep_interval_seconds = 1;
    let env = TestEnv::start_with(settings).await;
    let (status, body) = upload(
        &env,
        "/api/gre-chat/attachments",
        &player_token(29),
        "a.pdf",
        pdf(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["attachment"]["kind"], "file");
    assert_eq!(files_under(&dir.path().join("objects")).len(), 1);
    let objects = dir.path().join("objects");
    eventually(
        Duration::from_secs(10),
        "the unsent upload is swept",
        || {
            let objects = objects.clone();
            async move { files_under(&objects).is_empty() }
        },
    )
    .await;
    let mut player = env.player(29).await;
    player
        .send_json(json!({"type": "send_message", "attachmentId": body["attachment"]["id"]}))
        .await;
    assert_eq!(player.recv_type("error").await["code"], "not_found");
}

/// A transaction run as PostgREST runs a request: role `authenticated`, the caller's claims.
async fn api_transaction<'a>(
    db: &'a mut tokio_postgres::Client,
    claims: &str,
) -> tokio_postgres::Transaction<'a> {
    let tx = db.transaction().await.expect("begin");
    tx.batch_execute("set local role authenticated")
        .await
        .expect("role");
    tx.execute(
        "select set_config('request.jwt.claims', $1, true)",
        &[&claims],
    )
    .await
    .expect("claims");
    tx
}

#[tokio::test]
async fn a_staff_portal_row_naming_its_own_bucket_shows_up_the_same_and_players_cannot_write_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = local_settings(dir.path());
    settings.storage.readable_buckets = "staff-files".into();
    let env = TestEnv::start_with(settings).await;
    let session = env.open_session(29).await;
    // The staff portal put the file in its bucket itself...
    let object = dir.path().join("objects/staff-files/2026/schedule.pdf");
    std::fs::create_dir_all(object.parent().expect("parent")).expect("mkdir");
    std::fs::write(&object, pdf()).expect("write object");
    let mut player = env.player(29).await;
    player
        .send_json(json!({"type": "subscribe", "sessionId": session}))
        .await;
    player.recv_type("subscribed").await;

    // ...and writes the row straight through Supabase, as staff.
    let mut db = env.db().await;
    let staff_claims = json!({"role": "authenticated", "sub": "staff-9", "aud": "authenticated",
                              "app_metadata": {"role": "gre_staff"}})
    .to_string();
    let tx = api_transaction(&mut db, &staff_claims).await;
    tx.execute(
        "insert into gre_chat_messages (session_id, sender, sender_name, message, attachment_bucket, \
           attachment_key, attachment_name, attachment_type, attachment_size, message_is_label) \
         values ($1, 'gre', 'Anna', 'schedule.pdf', 'staff-files', '2026/schedule.pdf', 'schedule.pdf', \
                 'application/pdf', $2, true)",
        &[&session, &(pdf().len() as i64)],
    )
    .await
    .expect("staff insert with an attachment");
    tx.commit().await.expect("commit");

    let live = player.recv_type("chat_message").await;
    let m = &live["message"];
    assert_eq!(m["attachment"]["kind"], "file", "{live}");
    assert_eq!(m["attachment"]["messageIsLabel"], true);
    let id = m["id"].as_str().expect("id");
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{id}"),
        Some(&player_token(29)),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap_or("")
        .starts_with("attachment;"));
    assert_eq!(res.bytes().await.expect("bytes").to_vec(), pdf());

    // A player writing attachment columns straight through Supabase is refused, even for its
    // own session (it would name objects it never uploaded).
    let player_claims = json!({"role": "authenticated", "sub": "user-29", "aud": "authenticated",
                               "app_metadata": {"player_id": 29}})
    .to_string();
    let tx = api_transaction(&mut db, &player_claims).await;
    let refused = tx
        .execute(
            "insert into gre_chat_messages (session_id, sender, message, attachment_key, attachment_name, \
               attachment_type, attachment_size) \
             values ($1, 'player', 'x', '2026/schedule.pdf', 'x.pdf', 'application/pdf', 10)",
            &[&session],
        )
        .await
        .expect_err("a player may not set attachment columns");
    assert_eq!(
        refused
            .as_db_error()
            .map(|d| d.code().code().to_owned())
            .as_deref(),
        Some("42501"),
        "{refused}"
    );
    drop(tx);

    // A bucket the relay was not told to read: not served.
    let db = env.db().await;
    let other: uuid::Uuid = db
        .query_one(
            "insert into gre_chat_messages (session_id, sender, sender_id, message, attachment_bucket, \
               attachment_key, attachment_name, attachment_type, attachment_size) \
             values ($1, 'gre', 'staff-9', 'see this', 'private-bucket', 'a.pdf', 'a.pdf', 'application/pdf', 10) \
             returning id",
            &[&session],
        )
        .await
        .expect("dba insert")
        .get(0);
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{other}"),
        Some(&staff_token("staff-7")),
    )
    .await;
    assert_eq!(res.status().as_u16(), 404);
    // The database keeps the contract's rules: a label needs an attachment, types are listed.
    let bad = db
        .execute(
            "insert into gre_chat_messages (session_id, sender, sender_id, message, message_is_label) \
             values ($1, 'gre', 'staff-9', 'label without a file', true)",
            &[&session],
        )
        .await;
    assert!(bad.is_err());
    let bad = db
        .execute(
            "insert into gre_chat_messages (session_id, sender, sender_id, message, attachment_key, \
               attachment_name, attachment_type, attachment_size) \
             values ($1, 'gre', 'staff-9', 'x', 'a.svg', 'a.svg', 'image/svg+xml', 10)",
            &[&session],
        )
        .await;
    assert!(bad.is_err());
}

/// A real S3-compatible server (s3s-fs) on 127.0.0.1, with one bucket, storing in `root`.
async fn start_s3(root: &Path, bucket: &str, key: &str, secret: &str) -> std::net::SocketAddr {
    std::fs::create_dir_all(root.join(bucket)).expect("bucket dir");
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(key, secret));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_s3_backend_stores_and_serves_a_staff_pdf_and_a_player_photo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3_root = dir.path().join("s3");
    let addr = start_s3(
        &s3_root,
        "gre-chat",
        "test-access-key",
        "test-secret-key-0123456789",
    )
    .await;
    let mut settings = test_settings();
    settings.storage.backend = "s3".into();
    settings.storage.s3_endpoint = format!("http://{addr}");
    settings.storage.s3_access_key_id = "test-access-key".into();
    settings.storage.s3_secret_access_key = "test-secret-key-0123456789".into();
    let env = TestEnv::start_with(settings).await;
    let session = env.open_session(29).await;

    // Staff: a PDF with a caption, through REST; the player is offline, so a push row says so.
    let (status, body) = upload(
        &env,
        "/api/gre-admin/attachments",
        &staff_token("staff-7"),
        "Schedule.pdf",
        pdf(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let res = http()
        .post(env.http_url("/api/gre-admin/reply"))
        .bearer_auth(staff_token("staff-7"))
        .json(&json!({"sessionId": session, "attachmentId": body["attachment"]["id"]}))
        .send()
        .await
        .expect("reply");
    assert_eq!(res.status().as_u16(), 201);
    let reply: Value = res.json().await.expect("json");
    let id = reply["message"]["id"].as_str().expect("id");
    assert_eq!(reply["message"]["message"], "Schedule.pdf");
    let stored = files_under(&s3_root.join("gre-chat"));
    assert_eq!(
        stored.len(),
        1,
        "the object is in the S3 server: {stored:?}"
    );
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{id}"),
        Some(&player_token(29)),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("bytes").to_vec(), pdf());
    let db = env.db().await;
    let push: String = db
        .query_one(
            "select message from push_notifications where player_id = 29 order by created_at desc limit 1",
            &[],
        )
        .await
        .expect("push row")
        .get(0);
    assert_eq!(push, "Anna sent a file");

    // Player: a photo through the WebSocket, metadata stripped on the way into S3.
    let (status, body) = upload(
        &env,
        "/api/gre-chat/attachments",
        &player_token(29),
        "me.png",
        png_with_metadata(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut player = env.player(29).await;
    player
        .send_json(json!({"type": "send_message", "message": "here", "attachmentId": body["attachment"]["id"]}))
        .await;
    let sent = player.recv_type("message_sent").await;
    let photo = sent["message"]["id"].as_str().expect("id");
    let res = get(
        &env,
        &format!("/api/gre-chat/attachments/{photo}"),
        Some(&staff_token("staff-7")),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let bytes = res.bytes().await.expect("bytes");
    assert!(!contains(&bytes, b"51.5N"));
    assert!(files_under(&s3_root.join("gre-chat"))
        .iter()
        .all(|f| !contains(&std::fs::read(f).unwrap_or_default(), b"51.5N")));
}

/// The relay process's resident memory, in KiB (`VmRSS` of /proc/<pid>/status).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Samples the RSS of `pid` every 10 ms until `stop` is set; returns the highest sample.
fn sample_peak(
    pid: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(10));
        }
        peak.max(rss_kib(pid))
    })
}

/// Issue 14's memory bound, measured on the real binary (docs/performance.md, "Attachments:
/// memory while 20 clients upload"): 20 clients each stream 25 MiB (chunked, no length) at a
/// 10 MiB limit at once, then 20 clients each upload a 9 MiB PDF at once. Uploads are spooled to
/// disk as they stream, so the first costs the relay little memory whatever the sizes; the
/// second holds at most `storage.processing_concurrency` (2) files in memory at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_uploads_at_once_keep_the_relay_memory_bounded() {
    let (pg, _dir) = start_cluster().await;
    let files = tempfile::tempdir().expect("tempdir");
    let objects = files.path().join("objects");
    let spool = files.path().join("spool");
    std::fs::create_dir_all(&spool).expect("spool");
    let relay = RelayProcess::spawn_with(
        &pg.url(),
        0,
        &[
            ("GRE_STORAGE__LOCAL_DIR", &objects.to_string_lossy()),
            ("GRE_STORAGE__SPOOL_DIR", &spool.to_string_lossy()),
            // 20 uploads from one player at once: no pacing in the way of the measurement.
            ("GRE_WEBSOCKET__FRAMES_BURST", "100"),
        ],
    )
    .await;
    let pid = relay.child.id().expect("running");
    let addr: std::net::SocketAddr = relay
        .http_base
        .trim_start_matches("http://")
        .parse()
        .expect("relay address");
    let token = player_token(29);
    // Warm up: one small upload, so that the baseline includes the pool and first allocations.
    let res = http()
        .post(format!(
            "{}/api/gre-chat/attachments?name=a.pdf",
            relay.http_base
        ))
        .bearer_auth(&token)
        .body(pdf())
        .send()
        .await
        .expect("warm-up");
    assert_eq!(res.status().as_u16(), 201);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = rss_kib(pid);

    // 1. Oversized, streamed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_peak(pid, stop.clone());
    let mut head = png(1, 1, None);
    head.truncate(33);
    let started = std::time::Instant::now();
    let uploads = (0..20).map(|_| {
        let (head, token) = (head.clone(), token.clone());
        tokio::spawn(async move {
            raw_chunked_upload(addr, "/api/gre-chat/attachments", &token, &head, 25 << 20).await
        })
    });
    for upload in futures_util::future::join_all(uploads).await {
        let (status, text) = upload.expect("task");
        assert_eq!(status, 413, "{text}");
    }
    let oversized_secs = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let oversized_peak = sampler.join().expect("sampler");
    assert!(files_under(&spool).is_empty(), "spool cleaned up");

    // 2. Accepted, 9 MiB each.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_peak(pid, stop.clone());
    let mut big_pdf = pdf();
    big_pdf.resize(9 << 20, b' ');
    let started = std::time::Instant::now();
    let uploads = (0..20).map(|_| {
        let (body, token, base) = (big_pdf.clone(), token.clone(), relay.http_base.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/api/gre-chat/attachments?name=big.pdf"))
                .bearer_auth(token)
                .body(body)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    for upload in futures_util::future::join_all(uploads).await {
        assert_eq!(upload.expect("task").expect("upload"), 201);
    }
    let accepted_secs = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let accepted_peak = sampler.join().expect("sampler");

    // 3. Downloaded by 20 clients at once: streamed from the store, never read whole.
    let uploaded: Value = http()
        .post(format!(
            "{}/api/gre-chat/attachments?name=big.pdf",
            relay.http_base
        ))
        .bearer_auth(&token)
        .body(big_pdf.clone())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload json");
    let sent: Value = http()
        .post(format!("{}/api/gre-chat/send", relay.http_base))
        .bearer_auth(&token)
        .json(&json!({"attachmentId": uploaded["attachment"]["id"]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("send json");
    let message_id = sent["message"]["id"]
        .as_str()
        .expect("message id")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before_downloads = rss_kib(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_peak(pid, stop.clone());
    let downloads = (0..20).map(|_| {
        let (token, url) = (
            token.clone(),
            format!("{}/api/gre-chat/attachments/{message_id}", relay.http_base),
        );
        tokio::spawn(async move {
            let res = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(60))
                .send()
                .await?;
            let status = res.status().as_u16();
            let len = res.bytes().await?.len();
            Ok::<_, reqwest::Error>((status, len))
        })
    });
    for download in futures_util::future::join_all(downloads).await {
        let (status, len) = download.expect("task").expect("download");
        assert_eq!((status, len), (200, 9 << 20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let download_peak = sampler.join().expect("sampler");
    let after = rss_kib(pid);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "relay RSS: baseline {:.1} MiB; 20 x 25 MiB oversized at once: peak {:.1} MiB (+{:.1}) in {oversized_secs:.1} s; \
         20 x 9 MiB accepted at once: peak {:.1} MiB (+{:.1}) in {accepted_secs:.1} s; \
         20 downloads of 9 MiB at once: peak {:.1} MiB (+{:.1} over {:.1}); after {:.1} MiB",
        mib(baseline),
        mib(oversized_peak),
        mib(oversized_peak.saturating_sub(baseline)),
        mib(accepted_peak),
        mib(accepted_peak.saturating_sub(baseline)),
        mib(download_peak),
        mib(download_peak.saturating_sub(before_downloads)),
        mib(before_downloads),
        mib(after),
    );
    // Buffering would cost at least 20 x 10 MiB = 200 MiB in the first case and 180 MiB in the
    // second; spooling keeps both far below.
    assert!(
        oversized_peak.saturating_sub(baseline) < 64 * 1024,
        "oversized uploads grew the relay by {} KiB",
        oversized_peak.saturating_sub(baseline)
    );
    // Reading each download whole would hold 20 x 9 MiB = 180 MiB at once.
    assert!(
        download_peak.saturating_sub(before_downloads) < 64 * 1024,
        "downloads grew the relay by {} KiB",
        download_peak.saturating_sub(before_downloads)
    );
    assert!(
        accepted_peak.saturating_sub(baseline) < 100 * 1024,
        "accepted uploads grew the relay by {} KiB",
        accepted_peak.saturating_sub(baseline)
    );
}

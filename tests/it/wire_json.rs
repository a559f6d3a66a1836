//! The listener's read-back builds a message's wire JSON in the relay from plain columns
//! (src/db/wire_json.rs, issue 12 part 4) instead of calling `gre_relay.message_json()`. It must
//! be byte for byte what `message_json(m)::text` returns: checked here over rows with every
//! optional field, escapes, control characters, non-ASCII text and attachments, in a session
//! whose TimeZone is not UTC; and end to end, a message read back for a socket equals
//! `message_json()`'s.

use crate::support::*;
use gre_relay::db::wire_json::{message_wire_json, PLAIN_MESSAGE_COLUMNS};
use serde_json::Value;
use uuid::Uuid;

/// Inserts the varied rows into `session` and returns their ids.
async fn varied_rows(db: &tokio_postgres::Client, session: Uuid) -> Vec<Uuid> {
    let texts = [
        "plain",
        "quote \" backslash \\ slash / tab \t newline \n return \r",
        "controls \u{1} \u{8} \u{c} \u{1f} \u{7f} end",
        "unicode é ß 漢字 😀 \u{2028} \u{feff}",
        "<script>alert('x')</script> & ' \"",
        "   leading and trailing   ",
    ];
    let mut ids = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let cmid = (i % 2 == 0).then(|| format!("client-{i}-\"q\""));
        let name = (i % 3 == 0).then(|| format!("Näme {i} \\ \""));
        let row = db
            .query_one(
                "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message, client_message_id) \
                 values ($1, 'gre', 'staff-1', $2, $3, $4) returning id",
                &[&session, &name, t, &cmid],
            )
            .await
            .expect("insert a gre row");
        ids.push(row.get(0));
    }
    for sql in [
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'from the player') returning id",
        "insert into gre_chat_messages (session_id, sender, message, system_kind) values ($1, 'system', 'We reply soon', 'auto_reply') returning id",
        "insert into gre_chat_messages (session_id, sender, sender_id, message, attachment_bucket, attachment_key, \
           attachment_name, attachment_type, attachment_size, attachment_width, attachment_height, message_is_label) \
         values ($1, 'gre', 'staff-1', 'photo.png', 'b', 'k/1', 'photo \"1\".png', 'image/png', 123456789, 640, 480, true) returning id",
        "insert into gre_chat_messages (session_id, sender, message, attachment_bucket, attachment_key, \
           attachment_name, attachment_type, attachment_size) \
         values ($1, 'player', 'the contract', 'b', 'k/2', 'contract.pdf', 'application/pdf', 1) returning id",
    ] {
        let row = db.query_one(sql, &[&session]).await.expect(sql);
        ids.push(row.get(0));
    }
    db.execute(
        "update gre_chat_messages set status = 'read' where id = $1",
        &[&ids[0]],
    )
    .await
    .expect("mark one read");
    ids
}

#[tokio::test]
async fn the_read_backs_json_is_message_json_byte_for_byte() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    desk_off(&db).await;
    let session = env.open_session(4_100_001).await;
    let ids = varied_rows(&db, session).await;
    // The timestamp must not follow the session's TimeZone.
    db.batch_execute("set timezone = 'Pacific/Chatham'")
        .await
        .expect("set timezone");
    let rows = db
        .query(
            &format!(
                "select {PLAIN_MESSAGE_COLUMNS}, gre_relay.message_json(m)::text \
                 from public.gre_chat_messages m where m.session_id = $1 order by m.seq"
            ),
            &[&session],
        )
        .await
        .expect("read the rows");
    assert_eq!(rows.len(), ids.len());
    let last = rows[0].len() - 1;
    for row in &rows {
        let (sid, seq, json) = message_wire_json(row).expect("build the JSON");
        let expected: String = row.get(last);
        assert_eq!(json, expected);
        assert_eq!(sid, session);
        assert_eq!(seq, row.get::<_, i64>(9));
    }
}

#[tokio::test]
async fn a_message_read_back_for_a_socket_equals_message_json() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    desk_off(&db).await;
    let mut staff = env.staff("staff-1").await;
    let session = env.open_session(4_100_002).await;
    let id: Uuid = db
        .query_one(
            "insert into gre_chat_messages (session_id, sender, sender_id, message, client_message_id) \
             values ($1, 'gre', 'staff-1', 'live \"one\" \\ é \u{1}', 'c-1') returning id",
            &[&session],
        )
        .await
        .expect("insert")
        .get(0);
    let frame = loop {
        let f = staff.recv_type("chat_message").await;
        if f["message"]["id"] == id.to_string() {
            break f;
        }
    };
    let expected: String = db
        .query_one(
            "select gre_relay.message_json(m)::text from public.gre_chat_messages m where m.id = $1",
            &[&id],
        )
        .await
        .expect("message_json")
        .get(0);
    let expected: Value = serde_json::from_str(&expected).expect("JSON");
    assert_eq!(frame["message"], expected);
}

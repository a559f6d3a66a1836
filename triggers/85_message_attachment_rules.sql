-- 85_message_attachment_rules.sql
-- What: who may set a message's attachment columns (sql/0220) when writing straight through
--       Supabase (row level security applies to the writer):
--         staff (the staff portal that uploaded the file to Supabase Storage itself) may;
--         a player may not: a player attaches a file only through gre-relay's upload endpoint,
--         which sniffs the type, enforces the size and pixel limits and strips metadata, and
--         sends the message itself. A player naming an object key could otherwise make the relay
--         serve it another player's file.
--       The relay, the service key and a DBA are not API callers: the trigger's WHEN clause skips
--       them, and a message without attachment columns costs no call either.
--       Updates: a player may change only `status` (column grants, sql/0100); staff may correct
--       an attachment's metadata; the checks of sql/0220 hold for everyone.
-- Touches: function gre_relay.message_attachment_rules() and its EXECUTE privilege; trigger
--          gre_chat_messages_0_attachment_rules on public.gre_chat_messages.
-- Idempotent: yes (create or replace).

-- Not security definer: jwt_is_staff() must see the caller's own claims.
create or replace function gre_relay.message_attachment_rules() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if not gre_relay.jwt_is_staff() then
    raise exception 'gre_chat_messages: players attach files through the relay''s upload endpoint'
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;

-- As triggers/70 settles the functions that exist before this file: not for PUBLIC or anon;
-- authenticated and service_role run it (as the writer: it is invoker-rights).
revoke execute on function gre_relay.message_attachment_rules() from public, anon;
grant execute on function gre_relay.message_attachment_rules() to authenticated, service_role;

-- "0_attachment" sorts before "0_writer_rules": a refused attachment never reaches the rate
-- limiter or the numbering.
create or replace trigger gre_chat_messages_0_attachment_rules
  before insert on public.gre_chat_messages
  for each row
  when (pg_catalog.row_security_active('public.gre_chat_messages'::pg_catalog.regclass)
        and (new.attachment_key is not null or new.attachment_bucket is not null
             or new.attachment_name is not null or new.message_is_label))
  execute function gre_relay.message_attachment_rules();

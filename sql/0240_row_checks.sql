-- 0240_row_checks.sql
-- What: the check constraints of gre_chat_messages (14 of them: sender, status, message,
--       client id, sender id and name lengths, system kind, seven attachment rules) and of
--       gre_chat_sessions (3: status, assignee length, last_seq) become ONE check per table,
--       gre_chat_messages_rules and gre_chat_sessions_rules, each calling an immutable plpgsql
--       function that holds exactly the same rules (gre_relay.message_row_rules(),
--       gre_relay.session_row_rules()). They stay constraints: they hold with triggers disabled
--       (session_replication_role = replica, restores) and for every writer.
--       Why: PostgreSQL reads a table's check constraints back from their stored node text and
--       plans them again for every statement, i.e. for every row of a single-row insert: 19,300
--       characters for the message table and 2,000 for the session row that the numbering
--       UPDATE touches. A function's statements are prepared once per connection; the two new
--       checks are about 2,300 and 500 characters (docs/performance.md, "Issue 12, part 5").
--       A broken rule fails as before: SQLSTATE 23514 (check_violation), the message
--       `new row for relation "<table>" violates check constraint "<old name>"` and the
--       constraint field set to the OLD constraint's name (e.g. gre_chat_messages_message_check),
--       so a client matching either sees what it saw. Only the detail line ("Failing row
--       contains ...") is gone.
--       A rule's NULL passes, as in a check constraint.
-- Number: after sql/0231, outside issue 12's range of this session (0206-0209), because it must
--       run after sql/0210 and sql/0220, which add the columns (system_kind, attachments) and the
--       checks it replaces: files run in name order, so a 020x file would run before them on a
--       new database, and they would then add their checks back.
-- Locks: dropping and adding a check takes ACCESS EXCLUSIVE on the table (reads and writes
--       wait) until this file's transaction commits. The new checks are added NOT VALID and then
--       validated in the same transaction, which reads every row under that lock (about 5 s per
--       million messages: 1,000,000 calls of the function took 5.1 s on the loaded test VM).
--       On a table of more than 1,000,000 rows (pg_class.reltuples) the file skips the
--       validation and says so in a NOTICE; run it later with
--         alter table public.gre_chat_messages validate constraint gre_chat_messages_rules;
--       which takes SHARE UPDATE EXCLUSIVE only (reads and writes go on). Where old rows break
--       a rule (an adopted table: the length bounds of sql/0100 and the attachment rules were
--       added NOT VALID for them), the validation fails, the check stays NOT VALID (new and
--       updated rows are checked, as before) and a NOTICE says so.
-- Touches: functions gre_relay.message_row_rules(), gre_relay.session_row_rules(); check
--          constraints of public.gre_chat_messages and public.gre_chat_sessions (17 dropped, 2
--          added).
-- Idempotent: yes (create or replace; old checks dropped where present; the new checks are added only
--             where missing). Applying sql/0010, 0020, 0100, 0210 and 0220 again re-adds the old
--             checks where missing; this file then drops them again.

-- Keep every rule here the same as the check it replaces (sql/0010, 0020, 0100, 0210, 0220).
-- Each `coalesce(..., true)`: a check passes when its expression is null.
create or replace function gre_relay.message_row_rules(
  p_sender text, p_status text, p_message text, p_client_message_id text,
  p_sender_id text, p_sender_name text, p_system_kind text,
  p_attachment_key text, p_attachment_bucket text, p_attachment_name text,
  p_attachment_type text, p_attachment_size bigint, p_attachment_width integer,
  p_attachment_height integer, p_message_is_label boolean)
  returns boolean
  language plpgsql
  immutable
  parallel safe
  set search_path = ''
  as $$
declare
  v_broken text;
begin
  -- The usual row (no attachment, every rule met) in ONE expression: plpgsql prepares an
  -- expression's executor state once per transaction, so with one row per transaction each
  -- separate IF below would cost its own set-up (measured: docs/performance.md, "Issue 12,
  -- part 5"). Null (a null column) falls through to the rule-by-rule pass below.
  if p_sender in ('player', 'gre', 'system')
     and p_status in ('sent', 'delivered', 'read')
     and pg_catalog.char_length(p_message) between 1 and 4000
     and p_message operator(pg_catalog.~) '[^[:space:]]'
     and (p_client_message_id is null or pg_catalog.char_length(p_client_message_id) between 1 and 200)
     and (p_sender_id is null or pg_catalog.char_length(p_sender_id) <= 100)
     and (p_sender_name is null or pg_catalog.char_length(p_sender_name) <= 100)
     and (p_system_kind is null
          or (p_sender = 'system' and p_system_kind in ('auto_reply', 'after_hours', 'transfer')))
     and p_attachment_key is null and p_attachment_bucket is null and p_attachment_name is null
     and p_attachment_type is null and p_attachment_size is null and p_attachment_width is null
     and p_attachment_height is null and p_message_is_label is false then
    return true;
  end if;
  -- Rule by rule, to name the one broken (or to pass a row with attachment or with nulls).
  if not coalesce(p_sender in ('player', 'gre', 'system'), true) then
    v_broken := 'gre_chat_messages_sender_check';
  elsif not coalesce(p_status in ('sent', 'delivered', 'read'), true) then
    v_broken := 'gre_chat_messages_status_check';
  elsif not coalesce(pg_catalog.char_length(p_message) between 1 and 4000
                     and p_message operator(pg_catalog.~) '[^[:space:]]', true) then
    v_broken := 'gre_chat_messages_message_check';
  elsif not coalesce(p_client_message_id is null
                     or pg_catalog.char_length(p_client_message_id) between 1 and 200, true) then
    v_broken := 'gre_chat_messages_client_message_id_check';
  elsif not coalesce(p_sender_id is null or pg_catalog.char_length(p_sender_id) <= 100, true) then
    v_broken := 'gre_chat_messages_sender_id_length';
  elsif not coalesce(p_sender_name is null or pg_catalog.char_length(p_sender_name) <= 100, true) then
    v_broken := 'gre_chat_messages_sender_name_length';
  elsif not coalesce(p_system_kind is null
                     or (p_sender = 'system'
                         and p_system_kind in ('auto_reply', 'after_hours', 'transfer')), true) then
    v_broken := 'gre_chat_messages_system_kind_check';
  elsif p_attachment_key is null then
    -- The usual message: no attachment, so only the all-or-nothing rule applies (the other
    -- attachment rules are on null columns and pass).
    if not coalesce(p_attachment_bucket is null and p_attachment_name is null
                    and p_attachment_type is null and p_attachment_size is null
                    and p_attachment_width is null and p_attachment_height is null
                    and not p_message_is_label, true) then
      v_broken := 'gre_chat_messages_attachment_check';
    end if;
  elsif not coalesce(p_attachment_name is not null and p_attachment_type is not null
                     and p_attachment_size is not null
                     and (p_attachment_width is null) = (p_attachment_height is null), true) then
    v_broken := 'gre_chat_messages_attachment_check';
  elsif not coalesce(pg_catalog.char_length(p_attachment_key) between 1 and 1024
                     and p_attachment_key operator(pg_catalog.!~) '^/'
                     and p_attachment_key operator(pg_catalog.!~) '(^|/)\.\.?(/|$)'
                     and p_attachment_key operator(pg_catalog.!~) '[[:cntrl:]\\]', true) then
    v_broken := 'gre_chat_messages_attachment_key_check';
  end if;
  -- The rules below hold on their own columns whatever the key (as the separate checks did).
  if v_broken is null then
    if not coalesce(p_attachment_bucket operator(pg_catalog.~) '^[a-z0-9][a-z0-9._-]{0,62}$', true) then
      v_broken := 'gre_chat_messages_attachment_bucket_check';
    elsif not coalesce(pg_catalog.char_length(p_attachment_name) between 1 and 255
                       and p_attachment_name operator(pg_catalog.!~) '[[:cntrl:]/\\]'
                       and p_attachment_name operator(pg_catalog.~) '[^[:space:]]', true) then
      v_broken := 'gre_chat_messages_attachment_name_check';
    elsif not coalesce(p_attachment_type in ('image/jpeg', 'image/png', 'image/webp', 'image/gif',
                                             'application/pdf'), true) then
      v_broken := 'gre_chat_messages_attachment_type_check';
    elsif not coalesce(p_attachment_size between 1 and 1073741824, true) then
      v_broken := 'gre_chat_messages_attachment_size_check';
    elsif not coalesce(p_attachment_width between 1 and 1000000
                       and p_attachment_height between 1 and 1000000, true) then
      v_broken := 'gre_chat_messages_attachment_dimensions_check';
    else
      return true;
    end if;
  end if;
  raise exception 'new row for relation "gre_chat_messages" violates check constraint "%"', v_broken
    using errcode = 'check_violation', constraint = v_broken,
          schema = 'public', table = 'gre_chat_messages';
end
$$;

create or replace function gre_relay.session_row_rules(
  p_status text, p_assigned_gre_id text, p_last_seq bigint)
  returns boolean
  language plpgsql
  immutable
  parallel safe
  set search_path = ''
  as $$
declare
  v_broken text;
begin
  -- The usual row in one expression (see gre_relay.message_row_rules() above).
  if p_status in ('waiting', 'active', 'closed')
     and (p_assigned_gre_id is null or pg_catalog.char_length(p_assigned_gre_id) <= 100)
     and p_last_seq >= 0 then
    return true;
  end if;
  if not coalesce(p_status in ('waiting', 'active', 'closed'), true) then
    v_broken := 'gre_chat_sessions_status_check';
  elsif not coalesce(p_assigned_gre_id is null or pg_catalog.char_length(p_assigned_gre_id) <= 100, true) then
    v_broken := 'gre_chat_sessions_assigned_gre_id_length';
  elsif not coalesce(p_last_seq >= 0, true) then
    v_broken := 'gre_chat_sessions_last_seq_check';
  else
    return true;
  end if;
  raise exception 'new row for relation "gre_chat_sessions" violates check constraint "%"', v_broken
    using errcode = 'check_violation', constraint = v_broken,
          schema = 'public', table = 'gre_chat_sessions';
end
$$;

do $$
declare
  c record;
begin
  for c in
    select * from (values
      ('public.gre_chat_messages', 'gre_chat_messages_rules',
       'check (gre_relay.message_row_rules(sender, status, message, client_message_id, sender_id, '
       'sender_name, system_kind, attachment_key, attachment_bucket, attachment_name, attachment_type, '
       'attachment_size, attachment_width, attachment_height, message_is_label))',
       array['gre_chat_messages_sender_check', 'gre_chat_messages_status_check',
             'gre_chat_messages_message_check', 'gre_chat_messages_client_message_id_check',
             'gre_chat_messages_sender_id_length', 'gre_chat_messages_sender_name_length',
             'gre_chat_messages_system_kind_check', 'gre_chat_messages_attachment_check',
             'gre_chat_messages_attachment_key_check', 'gre_chat_messages_attachment_bucket_check',
             'gre_chat_messages_attachment_name_check', 'gre_chat_messages_attachment_type_check',
             'gre_chat_messages_attachment_size_check',
             'gre_chat_messages_attachment_dimensions_check']),
      ('public.gre_chat_sessions', 'gre_chat_sessions_rules',
       'check (gre_relay.session_row_rules(status, assigned_gre_id, last_seq))',
       array['gre_chat_sessions_status_check', 'gre_chat_sessions_assigned_gre_id_length',
             'gre_chat_sessions_last_seq_check'])
    ) as t(tbl, name, def, old)
  loop
    -- The new check first, so the table is never without its rules (all in one transaction).
    if not exists (select 1 from pg_catalog.pg_constraint
                    where conrelid = c.tbl::regclass and conname = c.name) then
      execute pg_catalog.format('alter table %s add constraint %I %s not valid', c.tbl, c.name, c.def);
    end if;
    for i in 1 .. pg_catalog.array_length(c.old, 1) loop
      if exists (select 1 from pg_catalog.pg_constraint
                  where conrelid = c.tbl::regclass and conname = c.old[i]) then
        execute pg_catalog.format('alter table %s drop constraint %I', c.tbl, c.old[i]);
      end if;
    end loop;
    if exists (select 1 from pg_catalog.pg_constraint
                where conrelid = c.tbl::regclass and conname = c.name and not convalidated) then
      if (select reltuples from pg_catalog.pg_class where oid = c.tbl::regclass) > 1000000 then
        raise notice '%: % left NOT VALID (large table); validate it later: alter table % validate constraint %',
          c.tbl, c.name, c.tbl, c.name;
      else
        begin
          execute pg_catalog.format('alter table %s validate constraint %I', c.tbl, c.name);
        exception when check_violation then
          raise notice '%: % left NOT VALID: old rows break a rule (new and updated rows are checked)',
            c.tbl, c.name;
        end;
      end if;
    end if;
  end loop;
end
$$;

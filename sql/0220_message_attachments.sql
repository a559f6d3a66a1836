-- 0220_message_attachments.sql
-- What: images and files in the chat (issue 14).
--   1. gre_chat_messages gets the attachment's metadata, all nullable (a message without an
--      attachment has them all null):
--        attachment_bucket  the object store bucket; null means the relay's own
--                           (`storage.bucket`). A staff portal that uploads straight to Supabase
--                           Storage names its bucket here.
--        attachment_key     the object's key (path) inside the bucket
--        attachment_name    the file name shown to people (no path, no control characters)
--        attachment_type    the MIME type, one of the allow-list (JPEG, PNG, WebP, GIF, PDF)
--        attachment_size    bytes
--        attachment_width, attachment_height   pixels, for images (null for a PDF)
--        message_is_label   true when `message` is not typed text but a label (the file name)
--                           that fills the pinned, non-empty `message` column of a message that
--                           is only an attachment: pages show no caption then.
--      CONTRACT section 1 still holds: `message` stays 1 to 4000 characters, not only white space.
--   2. gre_relay.attachment_uploads: files uploaded through the relay and not yet sent in a
--      message; sending one moves its metadata into the message row (and deletes the upload
--      row in the same transaction); the relay's sweep removes the rest after
--      `storage.unused_upload_seconds`, object included.
--   3. authenticated may insert the attachment columns (the staff portal writing its own rows);
--      triggers/85 refuses them from players, who attach through the relay's upload endpoint.
-- Touches: table public.gre_chat_messages (columns, check constraints, column grants); table
--          gre_relay.attachment_uploads.
-- Idempotent: yes (if not exists, catalog checks before adding constraints, grant).

alter table public.gre_chat_messages
  add column if not exists attachment_bucket text,
  add column if not exists attachment_key    text,
  add column if not exists attachment_name   text,
  add column if not exists attachment_type   text,
  add column if not exists attachment_size   bigint,
  add column if not exists attachment_width  integer,
  add column if not exists attachment_height integer,
  add column if not exists message_is_label  boolean not null default false;

-- NOT VALID: the rows that exist have every new column null (or false), so they pass anyway, and
-- a large table is not scanned under an exclusive lock to prove it. New rows are checked.
do $$
declare
  c record;
begin
  for c in
    select * from (values
      -- All or nothing: a key, a name, a type and a size together; dimensions in pairs; a label
      -- only stands in for the text of a message that has an attachment.
      ('gre_chat_messages_attachment_check', $c$check (
         case when attachment_key is null then
                attachment_bucket is null and attachment_name is null and attachment_type is null
                and attachment_size is null and attachment_width is null
                and attachment_height is null and not message_is_label
              else
                attachment_name is not null and attachment_type is not null
                and attachment_size is not null
                and (attachment_width is null) = (attachment_height is null)
         end)$c$),
      ('gre_chat_messages_attachment_key_check', $c$check (
         char_length(attachment_key) between 1 and 1024
         and attachment_key !~ '^/' and attachment_key !~ '(^|/)\.\.?(/|$)'
         and attachment_key !~ '[[:cntrl:]\\]')$c$),
      ('gre_chat_messages_attachment_bucket_check', $c$check (
         attachment_bucket ~ '^[a-z0-9][a-z0-9._-]{0,62}$')$c$),
      ('gre_chat_messages_attachment_name_check', $c$check (
         char_length(attachment_name) between 1 and 255
         and attachment_name !~ '[[:cntrl:]/\\]' and attachment_name ~ '[^[:space:]]')$c$),
      ('gre_chat_messages_attachment_type_check', $c$check (
         attachment_type in ('image/jpeg', 'image/png', 'image/webp', 'image/gif', 'application/pdf'))$c$),
      ('gre_chat_messages_attachment_size_check', $c$check (
         attachment_size between 1 and 1073741824)$c$),
      ('gre_chat_messages_attachment_dimensions_check', $c$check (
         attachment_width between 1 and 1000000 and attachment_height between 1 and 1000000)$c$)
    ) as t(name, def)
  loop
    if not exists (select 1 from pg_catalog.pg_constraint
                    where conrelid = 'public.gre_chat_messages'::regclass and conname = c.name) then
      execute pg_catalog.format('alter table public.gre_chat_messages add constraint %I %s not valid',
                                c.name, c.def);
    end if;
  end loop;
end
$$;

comment on column public.gre_chat_messages.attachment_key is
  'Object key of the attached file in attachment_bucket (null: the relay''s bucket); null: no attachment.';
comment on column public.gre_chat_messages.message_is_label is
  'True when message holds the file name as a label, not text the sender typed (an attachment sent alone).';

create table if not exists gre_relay.attachment_uploads (
  id          uuid primary key default gen_random_uuid(),
  -- Who uploaded it ('player:29', 'staff:<sub>'): only they may send it.
  owner       text not null,
  bucket      text not null,
  key         text not null,
  name        text not null,
  type        text not null,
  size        bigint not null,
  width       integer,
  height      integer,
  created_at  timestamptz not null default now()
);

comment on table gre_relay.attachment_uploads is
  'Files uploaded through gre-relay and not yet sent; the relay removes them (and their objects) after storage.unused_upload_seconds.';

-- The sweep: "uploads older than T".
create index if not exists attachment_uploads_created
  on gre_relay.attachment_uploads (created_at);

alter table gre_relay.attachment_uploads enable row level security;
-- The relay's private table: nobody but the owner (sql/0001 made the API roles where missing).
revoke all on table gre_relay.attachment_uploads from public, anon, authenticated, service_role;

-- The staff portal writes its own rows with an attachment it put in Supabase Storage.
grant insert (attachment_bucket, attachment_key, attachment_name, attachment_type,
              attachment_size, attachment_width, attachment_height, message_is_label)
  on table public.gre_chat_messages to authenticated;

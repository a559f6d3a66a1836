-- 0020_chat_messages.sql
-- What: every chat message, written by the relay, the staff portal or anyone with SQL access.
-- Touches: table public.gre_chat_messages and its indexes.
-- Idempotent: yes.
--
-- Beyond the pinned columns:
--   seq                the message's number within its session, assigned by trigger in commit
--                      order (never set it yourself: the trigger overwrites it). The wire cursor.
--   client_message_id  the sender's idempotency key: a retried send with the same key is stored once.

create table if not exists public.gre_chat_messages (
  id                 uuid primary key default gen_random_uuid(),
  session_id         uuid not null references public.gre_chat_sessions (id) on delete cascade,
  player_id          bigint not null,
  sender             text not null,
  sender_id          text,
  sender_name        text,
  message            text not null,
  status             text not null default 'sent',
  created_at         timestamptz not null default now(),
  seq                bigint not null,
  client_message_id  text,
  constraint gre_chat_messages_sender_check check (sender in ('player', 'gre', 'system')),
  constraint gre_chat_messages_status_check check (status in ('sent', 'delivered', 'read')),
  -- 1 to 4000 characters (not bytes), and not only white space.
  constraint gre_chat_messages_message_check check (
    char_length(message) between 1 and 4000 and message ~ '[^[:space:]]'
  ),
  constraint gre_chat_messages_client_message_id_check check (
    client_message_id is null or char_length(client_message_id) between 1 and 200
  )
);

-- Adopting a gre_chat_messages table that predates gre-relay (the original system's): add the
-- columns gre-relay needs and number the old rows of each session in creation order. Once every
-- row has a number this section changes nothing. Constraints are added NOT VALID: old rows are
-- not rechecked, new ones are.
alter table public.gre_chat_messages add column if not exists seq bigint;
alter table public.gre_chat_messages add column if not exists client_message_id text;

update public.gre_chat_messages m
   set seq = n.rn
  from (select id, row_number() over (partition by session_id order by created_at, id) as rn
          from public.gre_chat_messages
         where seq is null) n
 where m.id = n.id;

update public.gre_chat_sessions s
   set last_seq = n.max_seq
  from (select session_id, max(seq) as max_seq from public.gre_chat_messages group by session_id) n
 where s.id = n.session_id and s.last_seq < n.max_seq;

alter table public.gre_chat_messages alter column seq set not null;

do $$
declare
  c record;
begin
  for c in
    select * from (values
      ('gre_chat_messages_sender_check', $c$check (sender in ('player', 'gre', 'system'))$c$),
      ('gre_chat_messages_status_check', $c$check (status in ('sent', 'delivered', 'read'))$c$),
      ('gre_chat_messages_message_check',
       $c$check (char_length(message) between 1 and 4000 and message ~ '[^[:space:]]')$c$),
      ('gre_chat_messages_client_message_id_check',
       $c$check (client_message_id is null or char_length(client_message_id) between 1 and 200)$c$)
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

comment on table public.gre_chat_messages is
  'GRE chat messages. Inserting a row is enough to deliver it: a trigger notifies gre-relay.';
comment on column public.gre_chat_messages.seq is
  'Position in the session, assigned by trigger in commit order; the resume cursor.';

-- Backfill and paging: "messages of session S after cursor N, in order". Also unique: one number
-- per message.
create unique index if not exists gre_chat_messages_session_seq
  on public.gre_chat_messages (session_id, seq);

-- Idempotent retries.
create unique index if not exists gre_chat_messages_session_client_id
  on public.gre_chat_messages (session_id, client_message_id)
  where client_message_id is not null;

-- The relay's catch-up for staff after its LISTEN connection was lost: recent messages of every
-- session.
create index if not exists gre_chat_messages_created
  on public.gre_chat_messages (created_at);

-- Unread counts for the staff console: player messages not yet read.
create index if not exists gre_chat_messages_unread
  on public.gre_chat_messages (session_id)
  where status <> 'read';

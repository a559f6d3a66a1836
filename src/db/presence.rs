//! Queries on `gre_online_status` and this relay's instance rows (`gre_relay.relay_instances`,
//! `gre_relay.connections`): who is connected where.

use uuid::Uuid;

use super::{Store, StoreError};

/// One staff member's row of gre_online_status.
#[derive(Debug, Clone)]
pub(crate) struct StaffPresence {
    pub(crate) gre_id: String,
    pub(crate) is_online: bool,
    pub(crate) status: String,
    pub(crate) last_seen: Option<String>,
}

impl Store {
    /// Registers this relay process for presence (sql/0090_presence.sql).
    pub(crate) async fn register_instance(
        &self,
        instance: Uuid,
        hostname: &str,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "insert into gre_relay.relay_instances (instance_id, hostname) values ($1, $2) \
                 on conflict (instance_id) do update set heartbeat_at = now()",
                &[&instance, &hostname],
            )
            .await?;
        Ok(())
    }

    /// Refreshes this relay's heartbeat and reaps relays that stopped beating. Returns false when
    /// this relay's own row was gone (it was reaped while the database was out of reach).
    pub(crate) async fn heartbeat(&self, instance: Uuid) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let alive = client
            .execute(
                "update gre_relay.relay_instances set heartbeat_at = now() where instance_id = $1",
                &[&instance],
            )
            .await?
            > 0;
        client
            .execute("select gre_relay.reap_stale_relays()", &[])
            .await?;
        Ok(alive)
    }

    /// Removes this relay's presence (clean shutdown) and refreshes the staff it held.
    pub(crate) async fn unregister_instance(&self, instance: Uuid) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let staff = client
            .query(
                "select subject from gre_relay.presence where instance_id = $1 and kind = 'staff'",
                &[&instance],
            )
            .await?;
        client
            .execute(
                "delete from gre_relay.relay_instances where instance_id = $1",
                &[&instance],
            )
            .await?;
        for row in staff {
            let gre_id: String = row.try_get(0)?;
            client
                .execute("select gre_relay.refresh_staff_presence($1)", &[&gre_id])
                .await?;
        }
        Ok(())
    }

    /// Records whether this relay holds a socket of (kind, subject); for staff, also refreshes
    /// gre_online_status.
    pub(crate) async fn set_presence(
        &self,
        instance: Uuid,
        kind: &str,
        subject: &str,
        present: bool,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        if present {
            client
                .execute(
                    "insert into gre_relay.presence (kind, subject, instance_id) values ($1, $2, $3) \
                     on conflict do nothing",
                    &[&kind, &subject, &instance],
                )
                .await?;
        } else {
            client
                .execute(
                    "delete from gre_relay.presence where kind = $1 and subject = $2 and instance_id = $3",
                    &[&kind, &subject, &instance],
                )
                .await?;
        }
        if kind == "staff" {
            client
                .execute("select gre_relay.refresh_staff_presence($1)", &[&subject])
                .await?;
        }
        Ok(())
    }

    /// Staff members currently online.
    pub(crate) async fn online_staff(&self) -> Result<Vec<StaffPresence>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "select gre_id, is_online, status, gre_relay.ts_json(last_seen) from public.gre_online_status \
                 where is_online order by gre_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StaffPresence {
                    gre_id: r.try_get(0)?,
                    is_online: r.try_get(1)?,
                    status: r.try_get(2)?,
                    last_seen: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// One GRE's presence row, with the number of GRE staff online now.
    pub(crate) async fn staff_presence(
        &self,
        gre_id: &str,
    ) -> Result<Option<(StaffPresence, i64)>, StoreError> {
        self.query_one_opt(
            "select g.gre_id, g.is_online, g.status, gre_relay.ts_json(g.last_seen), \
                    (select count(*) from public.gre_online_status o where o.is_online) \
               from public.gre_online_status g where g.gre_id = $1",
            &[&gre_id],
            |r| {
                Ok((
                    StaffPresence {
                        gre_id: r.try_get(0)?,
                        is_online: r.try_get(1)?,
                        status: r.try_get(2)?,
                        last_seen: r.try_get(3)?,
                    },
                    r.try_get(4)?,
                ))
            },
        )
        .await
    }
}

// Package fleet lets several gateways share one PostgreSQL audit store as a
// fleet: a registry of nodes holding each gateway name under a lease that
// heartbeats renew, a registry of the fleet's live sessions, and kill
// requests carried to the node holding a session by PostgreSQL
// LISTEN/NOTIFY.
//
// A node joins with Join, which refuses a gateway name another node holds
// (ErrNameTaken) and takes over one whose lease has expired. Run then
// heartbeats, publishes the node's live sessions, reaps the nodes whose
// lease expired (handing each to Params.Lost, which closes its sessions in
// the audit store) and delivers kill requests to Params.Kill; Leave frees
// the name at a clean stop. List and Kill serve commands that are not
// nodes (`sluice sessions --live`, `sluice kill`). Kill requests are
// NOTIFY payloads naming the schema, the node and the session, parsed
// strictly (FuzzKillRequest). All times come from the database's clock,
// so the nodes' clocks need not agree.
//
// Steps is the fleet's mfa.Ledger: the time step of each user's last
// accepted TOTP code, so that a code is accepted once by the whole fleet
// and across restarts; one upsert decides atomically, and each heartbeat
// forgets the steps long expired.
//
// The tables (fleet_nodes, fleet_sessions, fleet_totp_steps) sit beside the audit store's
// and are created by Join if missing. docs/fleet.md describes the
// topology.
package fleet

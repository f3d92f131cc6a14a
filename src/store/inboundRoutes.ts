// Static inbound map: the user part of the To URI → (application, channel). sipUsername is the
// primary key across all applications, so an inbound INVITE resolves to exactly one channel.
import type { Database } from "bun:sqlite";
import type { InboundRouteInput } from "../config/entities.ts";
import type { ChangeFeed } from "./changes.ts";

export interface InboundRoute extends InboundRouteInput {
  applicationId: string;
  createdAt: string;
  updatedAt: string;
}

interface RouteRow {
  sip_username: string;
  application_id: string;
  channel_id: string;
  created_at: string;
  updated_at: string;
}

const fromRow = (row: RouteRow): InboundRoute => ({
  sipUsername: row.sip_username,
  channelId: row.channel_id,
  applicationId: row.application_id,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export class InboundRouteStore {
  constructor(
    private readonly db: Database,
    private readonly changes: ChangeFeed,
  ) {}

  /** The route for an inbound INVITE's To user, in any application. */
  find(sipUsername: string): InboundRoute | undefined {
    const row = this.db
      .query<RouteRow, { u: string }>("SELECT * FROM inbound_routes WHERE sip_username = $u")
      .get({ u: sipUsername });
    return row ? fromRow(row) : undefined;
  }

  listByApplication(applicationId: string): InboundRoute[] {
    return this.db
      .query<RouteRow, { app: string }>("SELECT * FROM inbound_routes WHERE application_id = $app ORDER BY sip_username")
      .all({ app: applicationId })
      .map(fromRow);
  }

  /** Inserts or moves the route; the caller checks ownership by another application first. */
  put(applicationId: string, input: InboundRouteInput): InboundRoute {
    const existing = this.find(input.sipUsername);
    if (existing && existing.applicationId === applicationId && existing.channelId === input.channelId) return existing;
    this.db
      .query(
        `INSERT INTO inbound_routes (sip_username, application_id, channel_id, created_at, updated_at)
         VALUES ($u, $app, $channel, $now, $now)
         ON CONFLICT (sip_username) DO UPDATE SET application_id = $app, channel_id = $channel, updated_at = $now`,
      )
      .run({ u: input.sipUsername, app: applicationId, channel: input.channelId, now: new Date().toISOString() });
    if (existing && existing.applicationId !== applicationId) {
      this.changes.emit({ entity: "inboundRoute", action: "deleted", applicationId: existing.applicationId, sipUsername: input.sipUsername });
    }
    const action = existing && existing.applicationId === applicationId ? "updated" : "created";
    this.changes.emit({ entity: "inboundRoute", action, applicationId, sipUsername: input.sipUsername });
    return this.find(input.sipUsername)!;
  }

  delete(applicationId: string, sipUsername: string): boolean {
    const deleted =
      this.db
        .query("DELETE FROM inbound_routes WHERE sip_username = $u AND application_id = $app")
        .run({ u: sipUsername, app: applicationId }).changes > 0;
    if (deleted) this.changes.emit({ entity: "inboundRoute", action: "deleted", applicationId, sipUsername });
    return deleted;
  }
}

// Static inbound map: the user part of the To URI → (application, channel). sipUsername is the
// primary key across all applications, so an inbound INVITE resolves to exactly one channel.
import type { InboundRouteInput } from "../config/entities.ts";
import type { ChangeFeed } from "./changes.ts";
import type { SqlExecutor } from "./sql.ts";

export interface InboundRoute extends InboundRouteInput {
  applicationId: string;
  createdAt: string;
  updatedAt: string;
}

export interface RouteRow {
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

export const selectInboundRoutes = "SELECT * FROM inbound_routes";

/** Reads come from the in-memory snapshot; writes go to the database, then to the snapshot. */
export class InboundRouteStore {
  private readonly byUsername = new Map<string, InboundRoute>();

  constructor(
    private readonly sql: SqlExecutor,
    private readonly changes: ChangeFeed,
    rows: RouteRow[],
  ) {
    this.replace(rows);
  }

  replace(rows: RouteRow[]): void {
    this.byUsername.clear();
    for (const row of rows) this.byUsername.set(row.sip_username, fromRow(row));
  }

  async reload(): Promise<void> {
    this.replace(await this.sql.query<RouteRow>(selectInboundRoutes));
  }

  /** The route for an inbound INVITE's To user, in any application. */
  find(sipUsername: string): InboundRoute | undefined {
    return this.byUsername.get(sipUsername);
  }

  listByApplication(applicationId: string): InboundRoute[] {
    return [...this.byUsername.values()]
      .filter((r) => r.applicationId === applicationId)
      .sort((a, b) => (a.sipUsername < b.sipUsername ? -1 : a.sipUsername > b.sipUsername ? 1 : 0));
  }

  /** Inserts or moves the route; the caller checks ownership by another application first. */
  put(applicationId: string, input: InboundRouteInput): Promise<InboundRoute> {
    return this.sql.serial(async () => {
      const existing = this.find(input.sipUsername);
      if (existing && existing.applicationId === applicationId && existing.channelId === input.channelId) return existing;
      const [row] = await this.sql.query<RouteRow>(
        `INSERT INTO inbound_routes (sip_username, application_id, channel_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (sip_username) DO UPDATE SET application_id = $2, channel_id = $3, updated_at = $4
         RETURNING *`,
        [input.sipUsername, applicationId, input.channelId, new Date().toISOString()],
      );
      const route = fromRow(row!);
      this.byUsername.set(route.sipUsername, route);
      if (existing && existing.applicationId !== applicationId) {
        await this.changes.committed({ entity: "inboundRoute", action: "deleted", applicationId: existing.applicationId, sipUsername: input.sipUsername });
      }
      const action = existing && existing.applicationId === applicationId ? "updated" : "created";
      await this.changes.committed({ entity: "inboundRoute", action, applicationId, sipUsername: input.sipUsername });
      return route;
    });
  }

  delete(applicationId: string, sipUsername: string): Promise<boolean> {
    return this.sql.serial(async () => {
      const deleted =
        (await this.sql.query("DELETE FROM inbound_routes WHERE sip_username = $1 AND application_id = $2 RETURNING sip_username", [sipUsername, applicationId]))
          .length > 0;
      if (!deleted) return false;
      this.byUsername.delete(sipUsername);
      await this.changes.committed({ entity: "inboundRoute", action: "deleted", applicationId, sipUsername });
      return true;
    });
  }
}

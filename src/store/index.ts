// The store: one SQLite database, one module per entity, one change feed.
//   const store = openStore("data/trunkline.db");
//   store.trunks.list(); store.changes.subscribe((change) => ...); store.close();
// Other areas add a migration to migrations.ts and their own entity module taking `store.db`.
import type { Database } from "bun:sqlite";
import { ApplicationStore } from "./applications.ts";
import { CallerIdStore } from "./callerIds.ts";
import { CallStore } from "./calls.ts";
import { ChangeFeed } from "./changes.ts";
import { openDatabase } from "./db.ts";
import { InboundRouteStore } from "./inboundRoutes.ts";
import type { Migration } from "./migrations.ts";
import { SettingsStore } from "./settings.ts";
import { TrunkStore } from "./trunks.ts";

export interface Store {
  readonly db: Database;
  readonly path: string;
  readonly changes: ChangeFeed;
  readonly trunks: TrunkStore;
  readonly applications: ApplicationStore;
  readonly inboundRoutes: InboundRouteStore;
  readonly callerIds: CallerIdStore;
  readonly settings: SettingsStore;
  readonly calls: CallStore;
  isOpen(): boolean;
  close(): void;
}

export function openStore(path: string, migrations?: Migration[]): Store {
  const db = openDatabase(path, migrations);
  const changes = new ChangeFeed();
  let open = true;
  return {
    db,
    path,
    changes,
    trunks: new TrunkStore(db, changes),
    applications: new ApplicationStore(db, changes),
    inboundRoutes: new InboundRouteStore(db, changes),
    callerIds: new CallerIdStore(db, changes),
    settings: new SettingsStore(db, changes),
    calls: new CallStore(db),
    isOpen: () => open,
    close() {
      if (!open) return;
      open = false;
      // Folds the WAL back into the main file so a copied database is complete.
      db.run("PRAGMA wal_checkpoint(TRUNCATE)");
      db.close();
    },
  };
}

export type { Application } from "./applications.ts";
export type { CallerIdConfig } from "./callerIds.ts";
export type { CallRecord } from "./calls.ts";
export type { StoreChange, Source } from "./changes.ts";
export type { InboundRoute } from "./inboundRoutes.ts";
export type { WebhookSettings } from "./settings.ts";
export type { Trunk } from "./trunks.ts";

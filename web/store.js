// Unsent answers on disk: the outbox's copy in IndexedDB.
//
// An answer counts as given once its write here has resolved. Every write is a
// transaction with `durability: "strict"`, which completes only after the browser has
// flushed it to disk, so an answer survives the browser being killed (or the machine
// losing power) right after. (localStorage, which earlier versions used, commits lazily:
// a browser killed within a few seconds of an answer lost it.) Records are scoped per
// dataset and session; an earlier version's localStorage copy is moved in on open.

import { decided } from "./decision.js";

const DB_NAME = "quorum";
const DB_VERSION = 1;
const STORE = "outbox";
const STRICT = { durability: "strict" };

/** A request or transaction as a promise. */
function settle(target, done) {
  return new Promise((resolve, reject) => {
    target[done] = () => resolve(target.result);
    target.onerror = () => reject(target.error || new Error("IndexedDB request failed"));
    if (done === "oncomplete") target.onabort = () => reject(target.error || new Error("IndexedDB write aborted"));
  });
}

function openDatabase() {
  const request = indexedDB.open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    // One record per unsent answer: key [scope, task hash], so a newer answer replaces it.
    request.result.createObjectStore(STORE, { keyPath: ["scope", "key"] });
  };
  return settle(request, "onsuccess").then((db) => {
    db.onversionchange = () => db.close(); // let a newer version of the app upgrade it
    return db;
  });
}

/** The answers of one dataset and session, kept in IndexedDB. */
export class AnswerStore {
  /**
   * @param {IDBDatabase} db
   * @param {string} scope  `<dataset>:<session>`
   */
  constructor(db, scope) {
    this.db = db;
    this.scope = scope;
    this.durable = true;
  }

  /**
   * The store for `scope`, with whatever an earlier version left under `legacyKey` in
   * localStorage moved in. Without IndexedDB (disabled, private mode quirks) the outbox
   * still works, in memory only: `durable` is false then.
   */
  static async open(scope, legacyKey = null) {
    let store;
    try {
      store = new AnswerStore(await openDatabase(), scope);
    } catch (err) {
      console.warn("IndexedDB is not available; unsent answers are kept in memory only", err);
      return new MemoryStore();
    }
    if (legacyKey) {
      try {
        await store.migrate(legacyKey);
      } catch (err) {
        console.warn("could not move the old outbox out of localStorage; trying again next visit", err);
      }
    }
    return store;
  }

  /** Saved records `{key, answer, held, error, seq}`, oldest first. */
  async load() {
    const tx = this.db.transaction(STORE, "readonly");
    const range = IDBKeyRange.bound([this.scope], [this.scope, []]);
    const records = await settle(tx.objectStore(STORE).getAll(range), "onsuccess");
    return records.sort((a, b) => a.seq - b.seq);
  }

  /** Write records (new or replacing); resolves once they are on disk. */
  put(records) {
    const tx = this.db.transaction(STORE, "readwrite", STRICT);
    const store = tx.objectStore(STORE);
    for (const record of records) store.put({ ...record, scope: this.scope });
    return settle(tx, "oncomplete");
  }

  /** Forget the records of these task hashes; resolves once that is on disk. */
  remove(keys) {
    const tx = this.db.transaction(STORE, "readwrite", STRICT);
    const store = tx.objectStore(STORE);
    for (const key of keys) store.delete([this.scope, key]);
    return settle(tx, "oncomplete");
  }

  /** Move an earlier version's localStorage outbox in, unless a record here is newer. */
  async migrate(legacyKey) {
    let saved;
    try {
      saved = JSON.parse(localStorage.getItem(legacyKey) || "null");
    } catch {
      saved = null; // damaged: nothing sensible to recover
    }
    if (!Array.isArray(saved)) {
      localStorage.removeItem(legacyKey);
      return;
    }
    const have = new Set((await this.load()).map((r) => r.key));
    const records = saved
      .filter((s) => s && s.answer && s.answer._task_hash !== undefined)
      .map((s, i) => ({
        key: String(s.answer._task_hash),
        // Versions before decision keys sent none; this is its decision from now on.
        answer: s.answer._decision_id ? s.answer : decided(s.answer),
        held: Boolean(s.held),
        error: s.error || null,
        seq: -saved.length + i, // before anything this version wrote
      }))
      .filter((r) => !have.has(r.key));
    if (records.length) await this.put(records);
    localStorage.removeItem(legacyKey); // only once IndexedDB has them
  }
}

/** The fallback without IndexedDB: nothing survives the page. */
class MemoryStore {
  constructor() {
    this.durable = false;
  }

  async load() {
    return [];
  }

  async put() {}

  async remove() {}
}

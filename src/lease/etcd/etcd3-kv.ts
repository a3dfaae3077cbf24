/**
 * The key-value store interface (./kv-store.ts) over etcd v3 with the etcd3
 * client: ranges, one-comparison transactions, leases and the resilient
 * watch stream. Every error is classified (./errors.ts): unreachable or
 * timed out (the outcome of a write is then unknown), or refused.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../logging';
import { errorText } from '../../util/errors';
import { classifyEtcdError, EtcdResponseTooLargeError } from './errors';
import type { KvCondition, KvEntry, KvHeader, KvStore, KvWatch, KvWatchHandlers, KvWatchOptions } from './kv-store';
import { entryOf, EtcdWatchStream, kvHeader, prefixRangeEnd } from './watch-stream';

/**
 * Keys per page of a listing to begin with. A page of lease records is a
 * few hundred KiB; a page whose answer is too large (values of up to
 * 1.5 MiB each, which no lease record needs) is asked again with a quarter
 * of the keys, down to one.
 */
export const LIST_PAGE_KEYS = 256;

export class Etcd3Kv implements KvStore {
  /** Requests that failed (any reason), for flanneld_store_request_errors_total. */
  requestErrors = 0;

  constructor(
    private readonly client: Etcd3,
    readonly endpoints: readonly string[],
    private readonly log: Logger,
  ) {}

  private async call<T>(op: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      this.requestErrors++;
      throw classifyEtcdError(e, op, this.endpoints);
    }
  }

  async get(key: string): Promise<{ entry: KvEntry | undefined; header: KvHeader }> {
    const res = await this.call(`get ${key}`, () => this.client.get(key).exec());
    const kv = res.kvs[0];
    return { entry: kv ? entryOf(kv) : undefined, header: kvHeader(res.header) };
  }

  /**
   * Every key under `prefix`, in pages (etcd's `limit`) read at the first
   * page's revision, so the listing is one consistent view whatever its
   * size. A single value too large to receive is reported with its key and
   * size only (valueBytes over the limit, no value).
   */
  async list(prefix: string): Promise<{ entries: KvEntry[]; header: KvHeader }> {
    const end = prefixRangeEnd(Buffer.from(prefix));
    let start = Buffer.from(prefix);
    let header: KvHeader | undefined;
    let limit = LIST_PAGE_KEYS;
    const entries: KvEntry[] = [];
    for (;;) {
      const page = () => {
        const b = this.client.getAll().inRange({ start, end }).limit(limit);
        if (header) b.revision(header.revision.toString());
        return b.exec();
      };
      let res;
      try {
        res = await this.call(`list ${prefix}`, page);
      } catch (e) {
        if (!(e instanceof EtcdResponseTooLargeError)) throw e;
        if (limit > 1) {
          limit = Math.max(1, limit >> 2);
          continue;
        }
        // One value alone is too large: step over its key.
        const only = await this.call(`list ${prefix}`, () => this.client.getAll().inRange({ start, end }).limit(1).keyBuffers());
        const key = only[0];
        if (!key) throw e;
        entries.push({ key: key.toString(), value: '', valueBytes: Number.POSITIVE_INFINITY, createRevision: 0n, modRevision: 0n, lease: '0' });
        start = Buffer.concat([key, Buffer.from([0])]);
        continue;
      }
      header ??= kvHeader(res.header);
      for (const kv of res.kvs) entries.push(entryOf(kv));
      const last = res.kvs.at(-1);
      if (!res.more || !last) break;
      start = Buffer.concat([last.key, Buffer.from([0])]);
      limit = LIST_PAGE_KEYS;
    }
    return { entries, header: header! };
  }

  private compare(key: string, c: KvCondition) {
    switch (c.kind) {
      case 'absent':
        return this.client.if(key, 'Version', '==', 0);
      case 'modRevision':
        return this.client.if(key, 'Mod', '==', c.modRevision.toString());
      case 'value':
        return this.client.if(key, 'Value', '==', c.value);
    }
  }

  async putIf(key: string, condition: KvCondition, value: string, lease: string): Promise<{ succeeded: boolean; header: KvHeader }> {
    const put = this.client.put(key).value(value);
    if (lease !== '0') put.lease(lease);
    const res = await this.call(`write ${key}`, () => this.compare(key, condition).then(put).commit());
    return { succeeded: res.succeeded, header: kvHeader(res.header) };
  }

  async deleteIf(key: string, condition: KvCondition): Promise<{ succeeded: boolean; header: KvHeader }> {
    const res = await this.call(`delete ${key}`, () => this.compare(key, condition).then(this.client.delete().key(key)).commit());
    return { succeeded: res.succeeded, header: kvHeader(res.header) };
  }

  async grant(ttlSeconds: number): Promise<string> {
    const res = await this.call(`grant a ${ttlSeconds} s lease`, () => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }));
    return res.ID;
  }

  async revoke(leaseId: string): Promise<void> {
    await this.call(`revoke lease ${leaseId}`, () => this.client.leaseClient.leaseRevoke({ ID: leaseId }));
  }

  async timeToLive(leaseId: string): Promise<number> {
    const res = await this.call(`time-to-live of lease ${leaseId}`, () => this.client.leaseClient.leaseTimeToLive({ ID: leaseId }));
    return Number(res.TTL);
  }

  watch(options: KvWatchOptions, handlers: KvWatchHandlers): KvWatch {
    const key = Buffer.from(options.key);
    return new EtcdWatchStream(
      this.client,
      {
        key,
        ...(options.prefix ? { rangeEnd: prefixRangeEnd(key) } : {}),
        startRevision: options.startRevision,
        ...(options.clusterId !== undefined ? { clusterId: options.clusterId } : {}),
        ...(options.progressIntervalMs ? { progressIntervalMs: options.progressIntervalMs } : {}),
        confirmHeader: async () => (await this.get(options.key)).header,
      },
      handlers,
      this.log.child({ watch: options.key }),
    );
  }

  close(): void {
    try {
      this.client.close();
    } catch (e) {
      this.log.debug({ err: errorText(e) }, 'closing the etcd client failed');
    }
  }
}

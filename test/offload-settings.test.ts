/**
 * The offload switches' pure logic: FLANNEL_TS_OFFLOAD, combining it with
 * the config, and the log lines of OffloadReporter.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OffloadReporter } from '../src/backends/udp/offload-log';
import {
  ALL_OFFLOADS,
  combineOffloads,
  needsVnetHeader,
  NO_OFFLOADS,
  OffloadEnvError,
  type OffloadReport,
  parseOffloadEnv,
} from '../src/forwarder/offload';
import { RecordingLogger } from '../src/logging';

test('FLANNEL_TS_OFFLOAD: unset/on/all allow everything, off/none nothing, a list allows exactly its names', () => {
  for (const v of [undefined, '', ' ', 'on', 'ALL']) assert.deepEqual(parseOffloadEnv(v), ALL_OFFLOADS, String(v));
  for (const v of ['off', 'None', ' OFF ']) assert.deepEqual(parseOffloadEnv(v), NO_OFFLOADS, v);
  assert.deepEqual(parseOffloadEnv('gso,gro'), { tso: false, uso: false, gso: true, gro: true });
  assert.deepEqual(parseOffloadEnv(' TSO , '), { tso: true, uso: false, gso: false, gro: false });
});

test('FLANNEL_TS_OFFLOAD: an unknown name is an error naming it and the accepted values', () => {
  assert.throws(
    () => parseOffloadEnv('gso,lro'),
    (e: unknown) =>
      e instanceof OffloadEnvError &&
      /FLANNEL_TS_OFFLOAD="gso,lro": unknown offload "lro"; use "off", "on", or a comma list of tso, uso, gso, gro/.test(e.message),
  );
});

test('an offload is used only when config and environment both allow it; the vnet header only when needed', () => {
  const c = combineOffloads({ tso: true, uso: false, gso: true, gro: true }, parseOffloadEnv('tso,uso,gro'));
  assert.deepEqual(c, { tso: true, uso: false, gso: false, gro: true });
  assert.equal(needsVnetHeader(NO_OFFLOADS), false);
  assert.equal(needsVnetHeader({ ...NO_OFFLOADS, gso: true }), false, 'UDP GSO alone works without it');
  for (const k of ['tso', 'uso', 'gro'] as const) assert.equal(needsVnetHeader({ ...NO_OFFLOADS, [k]: true }), true, k);
});

function report(overrides: Partial<OffloadReport> = {}): OffloadReport {
  const on = { status: 'on' as const };
  return { vnetHdr: true, tso: on, uso: on, gso: on, udpGro: on, gro: on, ...overrides };
}

test('the reporter logs the state once, each refusal at start, and each runtime failure once', () => {
  const log = new RecordingLogger();
  const r = new OffloadReporter(log);
  assert.equal(r.observe(undefined), 0, 'not started yet');
  assert.equal(r.observe(report({ uso: { status: 'refused', code: 'EINVAL' } })), 2);
  assert.match(log.records[0]!.msg, /^udp datapath offloads: tso on, uso refused, gso on, udpGro on, gro on$/);
  assert.equal(log.records[1]!.level, 'warn');
  assert.match(log.records[1]!.msg, /UDP segmentation offload on the TUN .* is off: the kernel refused it at start \(EINVAL\); traffic continues/);
  assert.equal(r.observe(report({ uso: { status: 'refused', code: 'EINVAL' } })), 0, 'nothing changed');
  const failed = report({ uso: { status: 'refused', code: 'EINVAL' }, gso: { status: 'failed', code: 'EIO' } });
  assert.equal(r.observe(failed), 1);
  assert.match(log.records[2]!.msg, /UDP GSO sends \(UDP_SEGMENT\) is off: the kernel refused it at runtime \(EIO\).*FLANNEL_TS_OFFLOAD/);
  assert.equal(r.observe(failed), 0, 'logged once');
  assert.equal(r.observe(failed, 3), 1, 'the first refused GSO send to a peer');
  assert.match(log.records[3]!.msg, /refused a UDP GSO send to a peer .* unsegmented sends, GSO is tried again every 10 s/);
  assert.equal(r.observe(failed, 7), 0, 'later refusals are only counted');
});

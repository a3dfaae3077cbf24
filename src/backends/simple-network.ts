/**
 * A network that only holds its lease (upstream's pkg/backend/simple_network.go,
 * SimpleNetwork): no device, no routes; FLANNEL_MTU is the external
 * interface's MTU. The other leases arrive and are ignored.
 */
import type { Lease, LeaseEvent } from '../lease/lease';
import type { BackendNetwork, BackendNetworkStatus } from './backend';

export class SimpleNetwork implements BackendNetwork {
  private synced = false;

  constructor(
    readonly lease: Lease,
    readonly mtu: number,
  ) {}

  start(): void {}

  applyLeases(_events: readonly LeaseEvent[]): void {
    this.synced = true;
  }

  async status(): Promise<BackendNetworkStatus> {
    return { synced: this.synced, routesDesired: 0, routesInstalled: 0, reconcilers: [] };
  }

  async stop(): Promise<void> {}
}

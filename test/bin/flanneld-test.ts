/**
 * The test launcher: runs flanneld (src/cli/main.ts) with the test build of
 * the addon, arming the faults named in FLANNEL_TS_TEST_FAULTS (a comma
 * list, lab/test-addon.ts). Tests that need a datapath failure start this
 * instead of bin/flanneld; the shipped flanneld has no way to load the test
 * build or to arm a fault.
 */
import { parseTestFaults, TEST_FAULTS_ENV, useTestAddon } from '../../lab/test-addon';
import { main } from '../../src/cli/main';

useTestAddon(parseTestFaults(process.env[TEST_FAULTS_ENV]));
main(process.argv.slice(2));

/**
 * A relay embedded in a plain Node process (`Relay.start`, not `slipstream relay`) with
 * the config file given as its argument: prints `{"signalingPort":…}` once started,
 * calls `relay.close()` when a line arrives on stdin, and then does nothing more, so the
 * process exits only if close() released everything the relay opened (the WebRTC
 * entry's node-datachannel peers included). Run by e2e-relay-webrtc-embedded-close.test.ts.
 */
import { createInterface } from 'node:readline';
import { createLogger } from '../../kit/log.js';
import { loadRelayConfig } from '../../relay/src/config.js';
import { Relay } from '../../relay/src/relay.js';

const relay = await Relay.start({ config: loadRelayConfig(process.argv[2]!), logger: createLogger('relay', 'error') });
process.stdout.write(`${JSON.stringify({ signalingPort: relay.addresses().webrtc?.port })}\n`);
const lines = createInterface({ input: process.stdin });
lines.once('line', () => {
  lines.close();
  process.stdin.destroy();
  relay.close();
  process.stdout.write('closed\n');
});

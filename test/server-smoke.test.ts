/** A first end-to-end pass: embedded-default-like server, admin write, RCAR, release. */
import test from 'ava';
import { KbsClient } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { samplePolicyText } from '../policy/index.js';
import { startTestKbs } from './helpers/kbs-server.js';

test('store, allow, attest and fetch a secret', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());
  t.truthy(kbs.adminToken);
  const admin = new KbsClient({ url: kbs.url, ...(kbs.adminToken ? { adminToken: kbs.adminToken } : {}) });
  await admin.setResource('default/key/one', Buffer.from('s3cret'));
  const guest = new KbsClient({ url: kbs.url });
  const key = TeeKeyPair.generate();
  await guest.attest(key);
  await t.throwsAsync(() => guest.getResource('default/key/one', key), { message: /HTTP 403 .*PolicyDeny/ });
  await admin.setResourcePolicy(samplePolicyText('allow_all'));
  t.is(Buffer.from(await guest.getResource('default/key/one', key)).toString(), 's3cret');
  t.false(kbs.logs().includes('s3cret'));
});

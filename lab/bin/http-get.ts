/**
 * GET a URL and print {"status":N,"body":"...","contentType":"..."} (for
 * probing health endpoints inside a namespace).
 */
import * as http from 'node:http';

const url = process.argv[2];
if (!url) {
  process.stderr.write('usage: http-get <url>\n');
  process.exit(2);
}
http
  .get(url, { timeout: 5000 }, (res) => {
    let body = '';
    res.on('data', (d: Buffer) => (body += d.toString()));
    res.on('end', () => {
      process.stdout.write(JSON.stringify({ status: res.statusCode, body, contentType: res.headers['content-type'] }) + '\n');
    });
  })
  .on('error', (e) => {
    process.stdout.write(JSON.stringify({ error: e.message }) + '\n');
    process.exit(1);
  });

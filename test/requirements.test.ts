import { describe, expect, it } from 'vitest';
import { CHROMIUM, locate, NATS_SERVER, PROMTOOL, remedy } from './requirements.ts';

describe('what the tests need', () => {
  const on =
    (...paths: string[]) =>
    (p: string) =>
      paths.includes(p);

  it.each([
    [
      'the Debian path first',
      NATS_SERVER,
      {},
      on('/usr/sbin/nats-server', '/opt/bin/nats-server'),
      '/usr/sbin/nats-server',
    ],
    [
      'a name on PATH',
      NATS_SERVER,
      { PATH: '/opt/a:/opt/bin' },
      on('/opt/bin/nats-server'),
      '/opt/bin/nats-server',
    ],
    [
      'another Chromium name on PATH',
      CHROMIUM,
      { PATH: '/snap/bin' },
      on('/snap/bin/chromium-browser'),
      '/snap/bin/chromium-browser',
    ],
    [
      'the variable over everything',
      CHROMIUM,
      { CHROMIUM: '/x/chrome' },
      on('/x/chrome', '/usr/bin/chromium'),
      '/x/chrome',
    ],
    [
      'a variable naming nothing: missing',
      CHROMIUM,
      { CHROMIUM: '/x/none' },
      on('/usr/bin/chromium'),
      undefined,
    ],
    ['nowhere', NATS_SERVER, { PATH: '/usr/bin' }, on(), undefined],
    ['promtool where Debian puts it', PROMTOOL, {}, on('/usr/bin/promtool'), '/usr/bin/promtool'],
    [
      'promtool on PATH',
      PROMTOOL,
      { PATH: '/opt/prometheus' },
      on('/opt/prometheus/promtool'),
      '/opt/prometheus/promtool',
    ],
  ])('finds %s', (_, req, env, exists, found) => {
    expect(locate(req, env, exists)).toBe(found);
  });

  it('installs the missing Debian packages when it may, or names them in one line', () => {
    expect(remedy([], false)).toEqual({ kind: 'none' });
    expect(remedy([NATS_SERVER, CHROMIUM], true)).toMatchObject({
      kind: 'install',
      packages: ['nats-server', 'chromium'],
    });
    const stop = remedy([CHROMIUM], false);
    expect(stop).toEqual({
      kind: 'stop',
      line: 'the tests need Chromium, not found: install it (sudo apt-get install chromium) or point CHROMIUM at it, then run npm test again',
    });
    expect(remedy([NATS_SERVER, CHROMIUM], false)).toMatchObject({
      line: expect.stringContaining('sudo apt-get install nats-server chromium'),
    });
    // promtool comes in Debian's prometheus package.
    expect(remedy([PROMTOOL], true)).toMatchObject({ kind: 'install', packages: ['prometheus'] });
    expect(remedy([PROMTOOL], false)).toMatchObject({
      line: expect.stringContaining('install it (sudo apt-get install prometheus) or point PROMTOOL at it'),
    });
  });
});

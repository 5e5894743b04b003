import test from 'ava';
import { guestCrashLine } from './guest-crash.ts';

test('the crash report is found before a backtrace longer than an error message quotes', (t) => {
  const backtrace = Array.from({ length: 100 }, (_, i) => `[   19.67${i}]  receive_buf+0x448/0x20e0 [virtio_net]\r`).join('\n');
  const console = [
    '[   19.664000] virtio_net virtio0 eth0: link up\r',
    '[   19.664826] Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: get_page_from_freelist+0x119e/0x11a0\r',
    backtrace,
  ].join('\n');
  t.true(console.length - console.indexOf('Kernel panic') > 2000);
  t.is(guestCrashLine(console), 'Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: get_page_from_freelist+0x119e/0x11a0');
  t.is(guestCrashLine('[    5.1] BUG: soft lockup - CPU#0 stuck for 26s! [swapper/0:0]'), 'BUG: soft lockup - CPU#0 stuck for 26s! [swapper/0:0]');
});

test('a console without a crash report gives none', (t) => {
  t.is(guestCrashLine('[    1.0] Run /init as init process\nvu-agent: ready\n'), undefined);
});

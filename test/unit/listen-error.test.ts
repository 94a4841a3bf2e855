/**
 * Why a port could not be bound, told as each OS has it: a low port needs root on Linux, only a
 * specific address does on macOS (10.14 and later), and nothing on Windows.
 */
import { describe, expect, it } from 'vitest';
import { listenErrorMessage } from '../../electron/relay/lan/listener.ts';

describe('the advice when port 25 cannot be bound', () => {
  it('on macOS points to every address, not to administrator rights for the port', () => {
    const text = listenErrorMessage('EACCES', '192.168.1.20', 25, 'permission denied', 'darwin');
    expect(text).toContain('"listen.host" to "0.0.0.0"');
    expect(text).not.toContain('setcap');
  });

  it('on Linux points to the capability a service gets, or port 2525', () => {
    const text = listenErrorMessage('EACCES', '0.0.0.0', 25, 'permission denied', 'linux');
    expect(text).toContain('CAP_NET_BIND_SERVICE');
    expect(text).toContain('2525');
  });

  it('on Windows says no rights are needed and names what else holds a port', () => {
    const text = listenErrorMessage('EACCES', '0.0.0.0', 25, 'permission denied', 'win32');
    expect(text).toContain('excludedportrange');
    expect(text).not.toContain('administrator rights on this system');
  });
});

/**
 * Desktop notifications for what needs the admin: a message that failed for good, delivery put on
 * hold, a device refused (with its address), and the tray's test email result.
 */
import { Notification } from 'electron';
import type { Notice } from '../app/service.ts';
import type { TestEmailView } from '../shared/ipc.ts';

/**
 * Notifications on screen. Electron's Notification is garbage-collected with its listeners once
 * nothing references it, and a click on it then does nothing: each is kept until it is clicked,
 * closed or failed.
 */
const onScreen = new Set<Notification>();

export function showNotice(notice: Pick<Notice, 'title' | 'body'>, onClick: () => void): void {
  if (!Notification.isSupported()) return;
  const notification = new Notification({ title: notice.title, body: notice.body });
  const forget = () => onScreen.delete(notification);
  notification.on('click', () => {
    forget();
    onClick();
  });
  notification.on('close', forget);
  notification.on('failed', forget);
  onScreen.add(notification);
  notification.show();
}

export function testEmailNotice(result: TestEmailView): Pick<Notice, 'title' | 'body'> {
  return result.ok
    ? { title: 'Test email sent', body: `To ${result.to}. The server said: ${result.reply}` }
    : {
        title: 'The test email was not sent',
        body: result.diagnosis ? `${result.diagnosis.title}: ${result.reply}` : result.reply,
      };
}

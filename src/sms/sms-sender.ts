/**
 * Delivers one text message to one phone number (E.164). Implementations
 * resolve when the provider accepted the message and reject with
 * SmsDeliveryError when it did not, so that the caller can void the code.
 */
export interface SmsSender {
  readonly name: string;
  send(phoneNumber: string, text: string): Promise<void>;
}

export class SmsDeliveryError extends Error {
  override name = 'SmsDeliveryError';
}

/**
 * CloudWatch Logs errors as the AWS JSON 1.1 protocol sends them: an HTTP status (400 for
 * client faults, throttling included; 5xx for service faults), the `x-amzn-ErrorType` header
 * and a body `{"__type": "...", "message": "..."}`. The SDK names its exception after `__type`.
 */
export class CloudWatchApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = 'CloudWatchApiError';
  }

  toJSON(): { __type: string; message: string } {
    return { __type: this.type, message: this.message };
  }
}

export const errors = {
  groupNotFound: () =>
    new CloudWatchApiError('ResourceNotFoundException', 'The specified log group does not exist.'),
  streamNotFound: () =>
    new CloudWatchApiError('ResourceNotFoundException', 'The specified log stream does not exist.'),
  groupExists: () =>
    new CloudWatchApiError(
      'ResourceAlreadyExistsException',
      'The specified log group already exists',
    ),
  streamExists: () =>
    new CloudWatchApiError(
      'ResourceAlreadyExistsException',
      'The specified log stream already exists',
    ),
  invalid: (message: string) => new CloudWatchApiError('InvalidParameterException', message),
  /** A request that breaks a field's constraint (length, range, pattern) in the API model. */
  validation: (field: string, value: string, constraint: string) =>
    new CloudWatchApiError(
      'InvalidParameterException',
      `1 validation error detected: Value '${value}' at '${field}' failed to satisfy constraint: ${constraint}`,
    ),
  throttled: () => new CloudWatchApiError('ThrottlingException', 'Rate exceeded'),
  unavailable: (status: number) =>
    new CloudWatchApiError(
      'ServiceUnavailableException',
      'The service cannot complete the request.',
      status,
    ),
  requestTimeout: () =>
    new CloudWatchApiError('RequestTimeoutException', 'Request timed out.', 408),
  unknownOperation: (target: string) =>
    new CloudWatchApiError('UnknownOperationException', `Unknown operation ${target}`),
  serialization: (message: string) => new CloudWatchApiError('SerializationException', message),
  missingAuth: () =>
    new CloudWatchApiError(
      'MissingAuthenticationTokenException',
      'Missing Authentication Token',
      400,
    ),
  unrecognizedClient: () =>
    new CloudWatchApiError(
      'UnrecognizedClientException',
      'The security token included in the request is invalid.',
    ),
};

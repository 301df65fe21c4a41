// Whether the environment alone configures an agent, as in Patroni's container images: PATRONI_CONFIGURATION (a whole
// YAML document) or at least PATRONI_NAME and PATRONI_SCOPE. No dependencies: the agent entry asks before loading any.

export function hasEnvironmentConfig(env: Readonly<Record<string, string | undefined>>): boolean {
  return (env.PATRONI_CONFIGURATION ?? '').trim() !== '' || ((env.PATRONI_NAME ?? '') !== '' && (env.PATRONI_SCOPE ?? '') !== '');
}

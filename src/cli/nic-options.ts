/**
 * The per-NIC options of `modifyvm` (and the NIC words of `controlvm`),
 * turned into a VmChange for the API. Values are checked by the daemon; here
 * only the shape of the command line is.
 */
import type { NicChange, VmChange } from '../model/vm.js';
import { onOff, usageError, type ParsedOption } from './argv.js';

type NicSetter = (change: NicChange, option: ParsedOption) => void;

const value = (option: ParsedOption): string => option.values[0]!;

/** Normalised option key → how it changes the NIC. */
export const NIC_OPTIONS: Record<string, NicSetter> = {
  nic: (c, o) => (c.mode = value(o) as NicChange['mode']),
  macaddress: (c, o) => (c.mac = value(o)),
  cableconnected: (c, o) => (c.cableConnected = onOff(o)),
  nicpromisc: (c, o) => (c.promisc = value(o) as NicChange['promisc']),
  nictrace: (c, o) => (c.trace = onOff(o)),
  nictracefile: (c, o) => (c.traceFile = value(o)),
  intnet: (c, o) => (c.intnet = value(o)),
  nicgenericdrv: (c, o) => (c.genericDriver = value(o) as NicChange['genericDriver']),
  nicproperty: (c, o) => {
    const text = value(o);
    const eq = text.indexOf('=');
    if (eq <= 0) throw usageError(`option ${o.spelling} expects key=value, not '${text}'`);
    c.genericProperties = { ...c.genericProperties, [text.slice(0, eq)]: text.slice(eq + 1) };
  },
  natpf: (c, o) => {
    // `--nat-pf1 delete NAME` removes; anything else is a rule.
    if (o.values[0] === 'delete') (c.deleteForwards ??= []).push(o.values[1]!);
    else (c.addForwards ??= []).push(value(o));
  },
  natnet: (c, o) => (c.natNet = value(o) === 'default' ? '' : value(o)),
  natlocalhostreachable: (c, o) => (c.natLocalhostReachable = onOff(o)),
  natdnshostresolver: (c, o) => (c.natDnsHostResolver = onOff(o)),
  natdnspassdomain: (c, o) => (c.natDnsPassDomain = onOff(o)),
  natsplice: (c, o) => (c.natSplice = onOff(o)),
  nattftpprefix: (c, o) => (c.natTftpPrefix = value(o)),
  nattftpfile: (c, o) => (c.natTftpFile = value(o)),
  nattftpserver: (c, o) => (c.natTftpServer = value(o)),
  natbindip: (c, o) => (c.natBindIp = value(o)),
  natnetwork: (c, o) => (c.natNetwork = value(o)),
  hostonlyadapter: (c, o) => (c.hostOnlyAdapter = value(o)),
  bridgeadapter: (c, o) => (c.bridgeAdapter = value(o)),
  nicmtu: (c, o) => {
    if (!/^\d+$/.test(value(o))) throw usageError(`option ${o.spelling} expects a number, not '${value(o)}'`);
    c.mtu = Number(value(o));
  },
};

/** Fold one NIC option into `change`; false if the option is not a NIC option. */
export function addNicOption(change: VmChange, option: ParsedOption): boolean {
  const setter = NIC_OPTIONS[option.key];
  if (!setter) return false;
  if (option.slot === undefined) throw usageError(`option ${option.spelling} needs a NIC number, e.g. ${option.spelling}1`);
  change.nics ??= {};
  const nic = (change.nics[String(option.slot)] ??= {});
  setter(nic, option);
  return true;
}

/** `--nat-pf<N> delete NAME` takes two values; every other option one. */
export const nicOptionArity = (key: string, first: string | undefined): number => (key === 'natpf' && first === 'delete' ? 2 : 1);

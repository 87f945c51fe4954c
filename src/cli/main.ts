/** `vnet`: VBoxManage's words for vnet. Prints one clear line and exits non-zero on any error. */
import { resolveHome, socketPath } from '../model/home.js';
import { usageError } from './argv.js';
import { ApiClient } from './client.js';
import { COMMANDS } from './commands.js';
import { runDaemon } from './daemon-command.js';

const USAGE = `usage: vnet [--home DIR] COMMAND ...        (the CLI talks to DIR/vnet.sock, or $VNET_SOCKET)
  daemon [--home DIR] [--listen tcp:HOST:PORT|unix:PATH] [--ui HOST:PORT|off] [--busy-poll-us N]
                                      run the engine (API on DIR/vnet.sock; dashboard on 127.0.0.1:8080)
  createvm --name NAME [--register]   create and register a VM
  modifyvm VM --nic<N> none|null|nat|natnetwork|intnet|hostonly|bridged|generic
              --mac-address<N> auto|HEX --cable-connected<N> on|off
              --nic-promisc<N> deny|allow-vms|allow-all --nic-trace<N> on|off
              --nic-trace-file<N> FILE --nic-mtu<N> MTU --intnet<N> NAME
              --nat-pf<N> "[name],tcp|udp,[hostip],hostport,[guestip],guestport" | delete NAME
              --nat-net<N> CIDR --nat-localhostreachable<N> on|off --nat-dns-host-resolver<N> on|off
              --nat-splice<N> on|off --nat-tftp-prefix<N> DIR --nat-tftp-file<N> F --nat-tftp-server<N> IP
              --nat-bind-ip<N> IP --nat-dns-pass-domain<N> on|off
              --nat-network<N> NAME --host-only-adapter<N> IF --bridge-adapter<N> IF
              --nic-generic-drv<N> UDPTunnel --nic-property<N> dest=H|sport=P|dport=P
              --boot<1-4> none|floppy|dvd|disk|net
  showvminfo VM [--machinereadable|--json]
  list vms|runningvms|intnets|natnets [--json]
  natnetwork add|modify|remove|start|stop|list --netname N [--network CIDR] [--enable|--disable]
             [--dhcp on|off] [--port-forward-4 "name:tcp|udp:[hostip]:hostport:[guestip]:guestport" | delete NAME]
  leases [--network N] [--json]; ip VM [--nic N]      which address each VM got
  startvm VM --type netns [--netns NAME]
  startvm VM --type headless|external  run QEMU (or listen for a hand-started one)
  modifyvm VM --memory MB --cpus N --kernel F --initrd F --append ARGS
  controlvm VM reset|acpipowerbutton|pause|resume      (QEMU, through QMP)
  createmedium disk --filename F --size MB --format VDI|QCOW2|RAW
  storagectl VM --name N --add ide|sata|scsi|virtio | --remove
  storageattach VM --storagectl N --port P --device D --type hdd|dvddrive --medium F|none|emptydrive
  list hdds|dvds; closemedium [disk] F [--delete]; medium check|repair F
  clonevm VM --name NEW [--options KeepAllMACs] --register
  export VM -o FILE; import FILE [--vsys-name NEW]; console VM [--no-follow]
  showvminfo VM --qemu-args|--netdev-args
  controlvm VM poweroff|setlinkstate<N> on|off|nictrace<N> on|off|nicpromisc<N> P
  controlvm VM natpf<N> RULE | natpf<N> delete NAME
  unregistervm VM [--delete]
  stats                               engine counters (JSON)
  hostonlyif create|ipconfig IF --ip A [--netmask M]|remove IF
  dhcpserver add|modify|remove|findlease --network N|--interface IF ...
  list hostonlyifs|bridgedifs|dhcpservers [--json]
  apply -f lab.yaml [--dry-run]       create/update a lab; export-config prints one
  events [--types T,..] [--json] [--count N]  follow the daemon's events`;

/** Split off the global `--home DIR` wherever it stands before the command. */
function takeHome(argv: string[]): { home?: string; rest: string[] } {
  const rest: string[] = [];
  let home: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (rest.length === 0 && (arg === '--home' || arg.startsWith('--home='))) {
      home = arg.includes('=') ? arg.slice(7) : argv[++i];
      if (home === undefined) throw usageError('option --home needs a value');
      continue;
    }
    rest.push(arg);
  }
  return { home, rest };
}

export async function main(argv: string[]): Promise<number> {
  try {
    const { home, rest } = takeHome(argv);
    const [command, ...args] = rest;
    if (!command || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(USAGE + '\n');
      return command ? 0 : 2;
    }
    if (command === 'daemon') {
      await runDaemon(args, home);
      return -1; // keeps running
    }
    const run = COMMANDS[command.toLowerCase()];
    if (!run) throw usageError(`unknown command '${command}'; see 'vnet help'`);
    const api = new ApiClient(home === undefined && process.env.VNET_SOCKET ? process.env.VNET_SOCKET : socketPath(resolveHome(home)));
    await run(args, { api, print: (text) => text && process.stdout.write(text + '\n') });
    return 0;
  } catch (err) {
    process.stderr.write(`vnet: error: ${(err as Error).message}\n`);
    return 1;
  }
}

# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_rpmem_global_optspecs
    string join \n q/quiet v/verbose h/help V/version
end

function __fish_rpmem_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_rpmem_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_rpmem_using_subcommand
    set -l cmd (__fish_rpmem_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c rpmem -n "__fish_rpmem_needs_command" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_needs_command" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rpmem -n "__fish_rpmem_needs_command" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "demo" -d 'Show rpmem working end to end on this machine, with nothing to set up'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "create" -d 'Create a pool on the target from a pool set file there'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "info" -d 'Open a pool and print its attributes, lanes and persistency method'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "remove" -d 'Remove a pool\'s part files on the target (and with --pool-set its pool set file)'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "list" -d 'List the pool set files the target offers, and whether each one parses'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "set-attr" -d 'Change attributes stored in a pool\'s header; the others stay as they are'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "put" -d 'Replicate a local file into a pool'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "get" -d 'Read bytes of a pool into a local file'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "bench" -d 'Measure persist/flush/read latency and throughput, beside raw-TCP baselines'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "poolset" -d 'Check a pool set file and print its replicas, parts, options and sizes'
complete -c rpmem -n "__fish_rpmem_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -l rpmemd -d 'The rpmemd program [default: rpmemd next to this program, else one built by cargo for this checkout, else on $PATH]' -r -F
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -l dir -d 'Where to make the scratch directory [default: /dev/shm when it exists, else the system\'s temporary directory]' -r -F
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -l lanes -d 'Lanes (TCP connections, one thread each) for the large transfers' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -l mib -d 'Megabytes replicated by the large transfers' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -l json -d 'Instead of explaining each step, print one JSON object with the figures at the end (after verification passed)'
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rpmem -n "__fish_rpmem_using_subcommand demo" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l size -d 'Pool size: bytes with an optional suffix (K, M, G, KiB, MiB, kB, MB, ...), a multiple of 4096, at most the pool set\'s size' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l signature -d 'Pool signature, at most 8 ASCII characters' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l major -d 'Major version of the pool format' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l compat -d 'Compatible feature flags (decimal or 0x hex)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l incompat -d 'Incompatible feature flags' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l ro-compat -d 'Read-only compatible feature flags' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l poolset-uuid -d 'Uuid of the pool set' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l uuid -d 'Uuid of the pool\'s first part' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l next-uuid -d 'Uuid of the next replica' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l prev-uuid -d 'Uuid of the previous replica' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l user-flags -d 'User flags, 32 hexadecimal digits' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l launch -d 'How rpmemd is started: "ssh", or "local" (executed directly on this host; the target must be localhost) [env: RPMEM_LAUNCH]' -r -f -a "ssh\t''
local\t''"
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l cmd -d 'The command that starts rpmemd on the target, e.g. "rpmemd -c /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd next to this program, else one built by cargo, else on $PATH [env: RPMEM_CMD]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l ssh -d 'The ssh client program [env: RPMEM_SSH]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l ssh-arg -d 'An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F --ssh-arg=/path/ssh_config)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l timeout -d 'Seconds to wait for each answer of rpmemd, and for a transfer that makes no progress [default: 30]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l spin-us -d 'Microseconds a waiting call polls its socket before it sleeps [env: RPMEM_SPIN_US] [default: 50]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l no-headers -d 'Create a pool without headers (the pool set file must say OPTION NOHDRS)'
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -l json -d 'Print the result as one JSON object'
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rpmem -n "__fish_rpmem_using_subcommand create" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l size -d 'Size to open the pool with: the protocol does not report a pool\'s size, rpmemd only refuses sizes above it (a multiple of 4096)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l lanes -d 'Lanes to ask for' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l launch -d 'How rpmemd is started: "ssh", or "local" (executed directly on this host; the target must be localhost) [env: RPMEM_LAUNCH]' -r -f -a "ssh\t''
local\t''"
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l cmd -d 'The command that starts rpmemd on the target, e.g. "rpmemd -c /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd next to this program, else one built by cargo, else on $PATH [env: RPMEM_CMD]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l ssh -d 'The ssh client program [env: RPMEM_SSH]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l ssh-arg -d 'An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F --ssh-arg=/path/ssh_config)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l timeout -d 'Seconds to wait for each answer of rpmemd, and for a transfer that makes no progress [default: 30]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l spin-us -d 'Microseconds a waiting call polls its socket before it sleeps [env: RPMEM_SPIN_US] [default: 50]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -l json -d 'Print one JSON object instead of text'
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -s h -l help -d 'Print help'
complete -c rpmem -n "__fish_rpmem_using_subcommand info" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l launch -d 'How rpmemd is started: "ssh", or "local" (executed directly on this host; the target must be localhost) [env: RPMEM_LAUNCH]' -r -f -a "ssh\t''
local\t''"
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l cmd -d 'The command that starts rpmemd on the target, e.g. "rpmemd -c /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd next to this program, else one built by cargo, else on $PATH [env: RPMEM_CMD]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l ssh -d 'The ssh client program [env: RPMEM_SSH]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l ssh-arg -d 'An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F --ssh-arg=/path/ssh_config)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l timeout -d 'Seconds to wait for each answer of rpmemd, and for a transfer that makes no progress [default: 30]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l spin-us -d 'Microseconds a waiting call polls its socket before it sleeps [env: RPMEM_SPIN_US] [default: 50]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l force -d 'Ignore errors while removing the part files'
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l pool-set -d 'Remove the pool set file too'
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -l json -d 'Print the result as one JSON object (on failure too: "ok": false)'
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -s h -l help -d 'Print help'
complete -c rpmem -n "__fish_rpmem_using_subcommand remove" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -l launch -d 'How rpmemd is started: "ssh", or "local" (executed directly on this host; the target must be localhost) [env: RPMEM_LAUNCH]' -r -f -a "ssh\t''
local\t''"
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -l cmd -d 'The command that starts rpmemd on the target, e.g. "rpmemd -c /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd next to this program, else one built by cargo, else on $PATH [env: RPMEM_CMD]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -l ssh -d 'The ssh client program [env: RPMEM_SSH]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -l ssh-arg -d 'An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F --ssh-arg=/path/ssh_config)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -l timeout -d 'Seconds to wait for each answer of rpmemd, and for a transfer that makes no progress [default: 30]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -l spin-us -d 'Microseconds a waiting call polls its socket before it sleeps [env: RPMEM_SPIN_US] [default: 50]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -l json -d 'Print one JSON object instead of text'
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rpmem -n "__fish_rpmem_using_subcommand list" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l signature -d 'Pool signature, at most 8 ASCII characters' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l major -d 'Major version of the pool format' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l compat -d 'Compatible feature flags (decimal or 0x hex)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l incompat -d 'Incompatible feature flags' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l ro-compat -d 'Read-only compatible feature flags' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l poolset-uuid -d 'Uuid of the pool set' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l uuid -d 'Uuid of the pool\'s first part' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l next-uuid -d 'Uuid of the next replica' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l prev-uuid -d 'Uuid of the previous replica' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l user-flags -d 'User flags, 32 hexadecimal digits' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l launch -d 'How rpmemd is started: "ssh", or "local" (executed directly on this host; the target must be localhost) [env: RPMEM_LAUNCH]' -r -f -a "ssh\t''
local\t''"
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l cmd -d 'The command that starts rpmemd on the target, e.g. "rpmemd -c /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd next to this program, else one built by cargo, else on $PATH [env: RPMEM_CMD]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l ssh -d 'The ssh client program [env: RPMEM_SSH]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l ssh-arg -d 'An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F --ssh-arg=/path/ssh_config)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l timeout -d 'Seconds to wait for each answer of rpmemd, and for a transfer that makes no progress [default: 30]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l spin-us -d 'Microseconds a waiting call polls its socket before it sleeps [env: RPMEM_SPIN_US] [default: 50]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -l json -d 'Print the result as one JSON object'
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rpmem -n "__fish_rpmem_using_subcommand set-attr" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l offset -d 'Pool offset of the file\'s first byte [default: 4096, the first byte after the pool header; 0 for a pool without headers]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l lanes -d 'Lanes (TCP connections, one thread each) to move the data over' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l launch -d 'How rpmemd is started: "ssh", or "local" (executed directly on this host; the target must be localhost) [env: RPMEM_LAUNCH]' -r -f -a "ssh\t''
local\t''"
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l cmd -d 'The command that starts rpmemd on the target, e.g. "rpmemd -c /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd next to this program, else one built by cargo, else on $PATH [env: RPMEM_CMD]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l ssh -d 'The ssh client program [env: RPMEM_SSH]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l ssh-arg -d 'An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F --ssh-arg=/path/ssh_config)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l timeout -d 'Seconds to wait for each answer of rpmemd, and for a transfer that makes no progress [default: 30]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l spin-us -d 'Microseconds a waiting call polls its socket before it sleeps [env: RPMEM_SPIN_US] [default: 50]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l no-progress -d 'Never show a progress bar (it is shown only on a terminal, for transfers of 4 MiB and more)'
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -l json -d 'When done, print one JSON object describing the transfer (not with get to standard output)'
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -s h -l help -d 'Print help'
complete -c rpmem -n "__fish_rpmem_using_subcommand put" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l offset -d 'Pool offset of the first byte to read [default: as for put]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l length -d 'Bytes to read' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l lanes -d 'Lanes (TCP connections, one thread each) to move the data over' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l launch -d 'How rpmemd is started: "ssh", or "local" (executed directly on this host; the target must be localhost) [env: RPMEM_LAUNCH]' -r -f -a "ssh\t''
local\t''"
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l cmd -d 'The command that starts rpmemd on the target, e.g. "rpmemd -c /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd next to this program, else one built by cargo, else on $PATH [env: RPMEM_CMD]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l ssh -d 'The ssh client program [env: RPMEM_SSH]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l ssh-arg -d 'An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F --ssh-arg=/path/ssh_config)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l timeout -d 'Seconds to wait for each answer of rpmemd, and for a transfer that makes no progress [default: 30]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l spin-us -d 'Microseconds a waiting call polls its socket before it sleeps [env: RPMEM_SPIN_US] [default: 50]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l no-progress -d 'Never show a progress bar (it is shown only on a terminal, for transfers of 4 MiB and more)'
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -l json -d 'When done, print one JSON object describing the transfer (not with get to standard output)'
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -s h -l help -d 'Print help'
complete -c rpmem -n "__fish_rpmem_using_subcommand get" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l rpmemd -d 'The rpmemd program for --local (see `rpmem demo --help`)' -r -F
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l dir -d 'Where --local makes its scratch directory (see `rpmem demo --help`)' -r -F
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l sizes -d 'Operation sizes, comma-separated [default: 64,4K,1M]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l lanes -d 'Lanes of the multi-lane throughput cases (the latency cases use 1)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l mode -d 'Operations to measure, comma-separated or repeated [default: all: persist, flush-drain, deep, read]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l ops -d 'Most timed operations per lane and case' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l seconds -d 'Longest time per case, in seconds' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l launch -d 'How rpmemd is started: "ssh", or "local" (executed directly on this host; the target must be localhost) [env: RPMEM_LAUNCH]' -r -f -a "ssh\t''
local\t''"
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l cmd -d 'The command that starts rpmemd on the target, e.g. "rpmemd -c /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd next to this program, else one built by cargo, else on $PATH [env: RPMEM_CMD]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l ssh -d 'The ssh client program [env: RPMEM_SSH]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l ssh-arg -d 'An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F --ssh-arg=/path/ssh_config)' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l timeout -d 'Seconds to wait for each answer of rpmemd, and for a transfer that makes no progress [default: 30]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l spin-us -d 'Microseconds a waiting call polls its socket before it sleeps [env: RPMEM_SPIN_US] [default: 50]' -r
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l local -d 'Start rpmemd on this host with a scratch pool, as `rpmem demo` does'
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l relaxed -d 'Use the relaxed flags (PERSIST_RELAXED, FLUSH_RELAXED): no 8-byte atomicity, fewer messages'
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -l json -d 'Print one JSON object instead of a table'
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rpmem -n "__fish_rpmem_using_subcommand bench" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand poolset" -l json -d 'Print one JSON object instead of text'
complete -c rpmem -n "__fish_rpmem_using_subcommand poolset" -s q -l quiet -d 'Print nothing but errors, --json objects and the data of `get -`: the exit status tells the result'
complete -c rpmem -n "__fish_rpmem_using_subcommand poolset" -s v -l verbose -d 'Also say on stderr how rpmemd is started and what the library logs'
complete -c rpmem -n "__fish_rpmem_using_subcommand poolset" -s h -l help -d 'Print help'
complete -c rpmem -n "__fish_rpmem_using_subcommand poolset" -s V -l version -d 'Print version'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "demo" -d 'Show rpmem working end to end on this machine, with nothing to set up'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "create" -d 'Create a pool on the target from a pool set file there'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "info" -d 'Open a pool and print its attributes, lanes and persistency method'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "remove" -d 'Remove a pool\'s part files on the target (and with --pool-set its pool set file)'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "list" -d 'List the pool set files the target offers, and whether each one parses'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "set-attr" -d 'Change attributes stored in a pool\'s header; the others stay as they are'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "put" -d 'Replicate a local file into a pool'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "get" -d 'Read bytes of a pool into a local file'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "bench" -d 'Measure persist/flush/read latency and throughput, beside raw-TCP baselines'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "poolset" -d 'Check a pool set file and print its replicas, parts, options and sizes'
complete -c rpmem -n "__fish_rpmem_using_subcommand help; and not __fish_seen_subcommand_from demo create info remove list set-attr put get bench poolset help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

# The talk's top.sls, with grain matching: every minion gets the ShellShock check, web
# minions get apache, snmp minions get snmp.
base:
  '*':
    - shellshock
  'roles:web':
    - match: grain
    - apache
  'roles:snmp':
    - match: grain
    - snmp

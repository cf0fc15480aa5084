base:
  'roles:snmp':
    - match: grain
    - snmp

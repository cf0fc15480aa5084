snmpcom: myCom
